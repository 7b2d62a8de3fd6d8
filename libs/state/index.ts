export {
  type StateStore,
  type StoredEntry,
  type WatchEvent,
  createMemoryStore,
  RevisionMismatchError,
  isRevisionMismatch,
  namePattern,
} from "./store.js";
export { lifecycles, initialState, canTransition, IllegalTransitionError, isIllegalTransition } from "./lifecycle.js";
export { type ModelEntry, type NodeEntry, type JobEntry, buckets } from "./entries.js";
export { stateClient, followBucket, type StateClient, type FollowOptions } from "./client.js";
