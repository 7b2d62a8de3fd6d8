import type { Client } from "@connectrpc/connect";
import { StateService } from "../gen/sluice/v1/state_pb.js";
import { connectTo } from "../transport/index.js";

/** A client of the state service. */
export type StateClient = Client<typeof StateService>;

/** A client of the state service at "host:port". */
export function stateClient(address: string): StateClient {
  return connectTo(StateService, address);
}

/** Options of {@link followBucket}. */
export interface FollowOptions {
  /** Key prefix, default "". */
  prefix?: string;
  /** Delay before reconnecting after the watch breaks, ms, default 500. */
  retryMs?: number;
  /** Called after the first snapshot is complete. */
  onCurrent?: () => void;
  /** Called when the watch breaks (it reconnects by itself). */
  onError?: (e: unknown) => void;
}

/**
 * Keeps a local copy of a bucket: reads the current entries, then applies every change,
 * reconnecting (and re-reading) when the watch breaks, until `signal` aborts.
 * `onChange` gets the parsed value, or undefined for a deletion.
 */
export function followBucket<T>(
  client: StateClient,
  bucket: string,
  signal: AbortSignal,
  onChange: (key: string, value: T | undefined, revision: bigint) => void,
  options: FollowOptions = {},
): void {
  const run = async () => {
    while (!signal.aborted) {
      try {
        for await (const res of client.watch({ bucket, prefix: options.prefix ?? "" }, { signal })) {
          if (res.currentDone) {
            options.onCurrent?.();
            continue;
          }
          const e = res.entry;
          if (e === undefined) continue;
          let value: T | undefined;
          if (e.present) {
            try {
              value = JSON.parse(e.value) as T;
            } catch {
              continue;
            }
          }
          onChange(e.key, value, e.revision);
        }
      } catch (e) {
        if (signal.aborted) return;
        options.onError?.(e);
      }
      await new Promise((r) => setTimeout(r, options.retryMs ?? 500).unref());
    }
  };
  void run();
}
