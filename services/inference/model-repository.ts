import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";

/** `<repo>/<model>/config.json`: how a model is served. Every key is optional. */
export interface ModelConfig {
  /** Default: the folder name. */
  name?: string;
  /** Largest batch one run takes, default 256. */
  maxBatchSize?: number;
  /** How long a lone request may wait for others to join its run, ms, default 0. */
  maxQueueDelayMs?: number;
  /** Requests waiting beyond this many records are refused with resource_exhausted, default 65536. */
  maxQueueRecords?: number;
  /** Class labels of the first output, in column order. */
  labels?: string[];
  /** Threads inside one operator, default 1. */
  intraOpThreads?: number;
  /** Version to serve; default the highest numbered folder. */
  version?: string;
}

/** A loaded model version. */
export interface LoadedModel {
  name: string;
  version: string;
  config: ModelConfig;
  session: ort.InferenceSession;
  inputName: string;
  outputNames: readonly string[];
  /** Feature width the model expects, or -1 if dynamic. */
  width: number;
  labels: string[];
}

/** The model folders of a repository. */
export async function listModels(repo: string): Promise<string[]> {
  const entries = await readdir(repo, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

/**
 * Loads `<repo>/<model>`: reads config.json (when present), picks the version folder and
 * creates an onnxruntime session with deliberate thread settings for small machines.
 * @throws Error naming the file when the config or the model cannot be read.
 */
export async function loadModel(
  repo: string,
  folder: string,
  overrides: Partial<ModelConfig> = {},
): Promise<LoadedModel> {
  const dir = path.join(repo, folder);
  const configPath = path.join(dir, "config.json");
  const config: ModelConfig = {
    ...(existsSync(configPath) ? (JSON.parse(await readFile(configPath, "utf8")) as ModelConfig) : {}),
    ...overrides,
  };
  const versions = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && existsSync(path.join(dir, e.name, "model.onnx")))
    .map((e) => e.name)
    .sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  const version = config.version ?? versions.at(-1);
  if (version === undefined) throw new Error(`${dir} has no <version>/model.onnx`);
  const session = await ort.InferenceSession.create(path.join(dir, version, "model.onnx"), {
    intraOpNumThreads: config.intraOpThreads ?? 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const inputName = session.inputNames[0];
  if (inputName === undefined) throw new Error(`${folder}/${version}/model.onnx has no input`);
  const meta = session.inputMetadata?.[0] as { shape?: ReadonlyArray<number | string> } | undefined;
  const last = meta?.shape?.at(-1);
  return {
    name: config.name ?? folder,
    version,
    config,
    session,
    inputName,
    outputNames: session.outputNames,
    width: typeof last === "number" ? last : -1,
    labels: config.labels ?? [],
  };
}
