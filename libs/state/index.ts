export { type FollowOptions, followBucket, type StateClient, stateClient } from "./client.js";
export { buckets, type JobEntry, type ModelEntry, type NodeEntry } from "./entries.js";
export { canTransition, IllegalTransitionError, initialState, isIllegalTransition, lifecycles } from "./lifecycle.js";
export { createNatsStore, type NatsStore, type NatsStoreOptions } from "./nats-store.js";
export {
  createMemoryStore,
  isRevisionMismatch,
  namePattern,
  RevisionMismatchError,
  type StateStore,
  type StoredEntry,
  type WatchEvent,
} from "./store.js";
