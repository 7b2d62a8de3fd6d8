import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { clientTraceInterceptor } from "../telemetry/index.js";

/** Options of {@link connectTo}. */
export interface ConnectOptions {
  /** Largest accepted message in bytes, default 64 MiB. */
  readMaxBytes?: number;
  /** Ask peers to gzip responses, default false. */
  compression?: boolean;
}

const transports = new Map<string, Transport>();

/**
 * A gRPC (HTTP/2) transport to "host:port", shared per address so every client of one
 * process multiplexes its streams over one HTTP/2 connection per peer.
 */
export function transportTo(address: string, options: ConnectOptions = {}): Transport {
  const key = `${address}|${options.readMaxBytes ?? ""}`;
  let t = transports.get(key);
  if (t === undefined) {
    t = createGrpcTransport({
      baseUrl: address.includes("://") ? address : `http://${address}`,
      interceptors: [clientTraceInterceptor],
      readMaxBytes: options.readMaxBytes ?? 64 * 1024 * 1024,
      writeMaxBytes: options.readMaxBytes ?? 64 * 1024 * 1024,
      // Keep connections alive through idle periods; detect dead peers.
      pingIntervalMs: 10_000,
      pingTimeoutMs: 5_000,
      idleConnectionTimeoutMs: 60_000,
      // Node's default session memory (10 MB, counting data queued to send) makes the
      // sender reset a stream carrying one ~10 MB message with NGHTTP2_ENHANCE_YOUR_CALM, far
      // below writeMaxBytes: allow a few messages of the largest size.
      nodeOptions: {
        maxSessionMemory: Math.max(10, Math.ceil((4 * (options.readMaxBytes ?? 64 * 1024 * 1024)) / (1024 * 1024))),
      },
      // Loopback and LAN hops: gzip costs more CPU than it saves (measured: zlib was the top
      // frame in ingest). Servers still negotiate gzip with callers that ask for it.
      ...(options.compression ? {} : { acceptCompression: [] }),
    });
    transports.set(key, t);
  }
  return t;
}

/** A typed client of `service` at "host:port". */
export function connectTo<T extends DescService>(service: T, address: string, options: ConnectOptions = {}): Client<T> {
  return createClient(service, transportTo(address, options));
}
