import { context, propagation } from "@opentelemetry/api";
import { connect, headers, type MsgHdrs, type NatsConnection, type Subscription } from "nats";

/** Options of {@link connectNats}. */
export interface NatsOptions {
  /** One URL or several, comma-separated or as a list (all servers of a cluster, for failover). */
  servers: string | string[];
  /** Connection name shown by the server. */
  name?: string;
  /** Try the servers in the order given instead of a random one first, default false. */
  noRandomize?: boolean;
}

/**
 * Connects to NATS and keeps reconnecting for ever (every 250 ms, to any server of the list):
 * a node must outlive NATS restarts and failovers.
 */
export function connectNats(options: NatsOptions): Promise<NatsConnection> {
  const servers = (Array.isArray(options.servers) ? options.servers : options.servers.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return connect({
    servers,
    ...(options.name ? { name: options.name } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 50,
    // A half-dead server is noticed within seconds; a killed one at once (the socket closes).
    pingInterval: 5_000,
    maxPingOut: 2,
    noRandomize: options.noRandomize ?? false,
    waitOnFirstConnect: true,
  });
}

/** NATS headers carrying the active W3C trace context (traceparent, tracestate). */
export function traceHeaders(): MsgHdrs {
  const h = headers();
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  for (const [k, v] of Object.entries(carrier)) h.set(k, v);
  return h;
}

/** Publishes a JSON value on a core subject with the active trace context in its headers. */
export function publishJson(nc: NatsConnection, subject: string, value: unknown): void {
  nc.publish(subject, new TextEncoder().encode(JSON.stringify(value)), { headers: traceHeaders() });
}

/** Calls `onValue` with each JSON message on `subject` (wildcards allowed); bad messages are skipped. */
export function subscribeJson<T>(
  nc: NatsConnection,
  subject: string,
  onValue: (value: T, subject: string, headers: MsgHdrs | undefined) => void,
): Subscription {
  const decoder = new TextDecoder();
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      try {
        onValue(JSON.parse(decoder.decode(msg.data)) as T, msg.subject, msg.headers);
      } catch {
        // Not JSON: not ours.
      }
    },
  });
}

/** The subject an inference node's heartbeat goes to. */
export function heartbeatSubject(nodeId: string): string {
  return `sluice.nodes.${nodeId.replace(/[.*>\s]/g, "_")}.heartbeat`;
}

/** Every node's heartbeat. */
export const allHeartbeats = "sluice.nodes.*.heartbeat";

export type { NatsConnection } from "nats";
