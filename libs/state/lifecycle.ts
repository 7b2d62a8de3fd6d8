/** The lifecycle graph of each bucket whose entries have one: state → the states it may move to. */
export const lifecycles: Record<string, Record<string, readonly string[]>> = {
  // A job, e.g. a training run an external trainer reports.
  jobs: {
    initialized: ["training", "failed"],
    training: ["serving", "failed"],
    serving: ["done", "failed"],
    done: ["failed"],
    failed: ["reset"],
    reset: ["initialized", "failed"],
  },
  // A model version in the registry.
  models: {
    registered: ["loading", "failed"],
    loading: ["ready", "failed"],
    ready: ["draining", "failed"],
    draining: ["unloaded", "ready", "failed"],
    unloaded: ["loading", "failed"],
    failed: ["reset"],
    reset: ["registered", "failed"],
  },
};

/** The first state of an entry of `bucket`. */
export function initialState(bucket: string): string {
  return bucket === "jobs" ? "initialized" : "registered";
}

/** Thrown for a move that the lifecycle graph does not have. */
export class IllegalTransitionError extends Error {
  override readonly name = "IllegalTransitionError";
  constructor(
    readonly bucket: string,
    readonly key: string,
    readonly current: string,
    readonly to: string,
  ) {
    const allowed = lifecycles[bucket]?.[current]?.join(", ") || "none";
    super(`${bucket}/${key} is ${current}; ${current} → ${to} is not allowed (allowed from ${current}: ${allowed})`);
  }
}

/** Guard for {@link IllegalTransitionError}. */
export function isIllegalTransition(e: unknown): e is IllegalTransitionError {
  return e instanceof IllegalTransitionError;
}

/** Whether `bucket`'s graph has the move `from` → `to`. */
export function canTransition(bucket: string, from: string, to: string): boolean {
  return lifecycles[bucket]?.[from]?.includes(to) ?? false;
}
