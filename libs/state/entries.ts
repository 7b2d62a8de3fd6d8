/** A model version in the registry (bucket "models", key = model name). */
export interface ModelEntry {
  name: string;
  /** Lifecycle state, see `lifecycles.models`. */
  state: string;
  version?: string;
  labels?: string[];
  /** Why the model is failed, when it is. */
  reason?: string;
  /** Serving parameters. */
  params?: Record<string, unknown>;
}

/** An inference node (bucket "nodes", key = node id). */
export interface NodeEntry {
  id: string;
  address: string;
  /** Models ready on the node, "name" or "name@version". */
  models: string[];
  /** When the node last said it was alive, ms since the epoch. */
  heartbeatMs: number;
  inFlight?: number;
  queueDepth?: number;
  latencyMs?: number;
  /** Revision of each model's registry entry whose parameters are in force. */
  applied?: Record<string, string>;
  /** Serving parameters in force per model. */
  params?: Record<string, unknown>;
}

/** A job (bucket "jobs"). */
export interface JobEntry {
  name: string;
  state: string;
  reason?: string;
  [extra: string]: unknown;
}

/** Bucket names the services use. */
export const buckets = {
  pipelines: "pipelines",
  models: "models",
  nodes: "nodes",
  jobs: "jobs",
  sequences: "sequences",
  /** What each service instance has in force (e.g. pipeline revisions of a preprocess). */
  services: "services",
} as const;
