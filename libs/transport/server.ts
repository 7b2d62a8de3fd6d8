import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { serverTraceInterceptor } from "../telemetry/index.js";
import { type HealthStatus, registerHealth } from "./health.js";
import { registerReflection } from "./reflection.js";

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Service name, used in logs and health. */
  name: string;
  /** Registers the service's handlers on the router. */
  routes: (router: ConnectRouter) => void;
  /** The services `routes` registers, for health and reflection. */
  services: DescService[];
  /** Host to bind, default "127.0.0.1". */
  host?: string;
  /** Port to bind, default 0 (any free port). */
  port?: number;
  /** Largest accepted message in bytes, default 64 MiB. */
  readMaxBytes?: number;
}

/** A listening service: gRPC, gRPC-Web and Connect on one plaintext port. */
export interface RunningServer {
  /** "host:port" as clients dial it. */
  readonly address: string;
  readonly port: number;
  /** Sets the health of the whole server ("" service) and every named service. */
  setHealth(status: HealthStatus): void;
  /** Stops accepting, ends open streams after `graceMs`, closes. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

const http2Preface = Buffer.from("PRI * HTTP/2.0");

/**
 * Starts one HTTP server that speaks gRPC, gRPC-Web and Connect on one plaintext port,
 * with grpc.health.v1 and grpc.reflection.v1 added.
 *
 * Node's plaintext http2 server refuses HTTP/1.1, so each connection is handed to an http2
 * or an http1 server by its first bytes: h2c gRPC callers send the HTTP/2 preface, `curl`
 * without `--http2-prior-knowledge` sends HTTP/1.1.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const serviceNames = options.services.map((s) => s.typeName);
  const files = collectFiles([...options.services, Health, ServerReflection]);
  const health = { set: (_s: HealthStatus) => {} };
  const handler = connectNodeAdapter({
    interceptors: [serverTraceInterceptor],
    readMaxBytes: options.readMaxBytes ?? 64 * 1024 * 1024,
    routes(router) {
      options.routes(router);
      health.set = registerHealth(router, serviceNames);
      registerReflection(
        router,
        [...serviceNames, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"],
        files,
      );
    },
  });
  const h2 = http2.createServer({}, handler);
  const h1 = http.createServer(handler);
  h1.keepAliveTimeout = 5_000;
  // h1 never listens itself, and Node tracks HTTP/1.1 connections only from a server's
  // 'listening' event, so h1.closeIdleConnections() would close nothing: count the
  // requests in progress per connection here, and end a connection once it is idle.
  let stopping = false;
  const h1Busy = new Map<net.Socket, number>();
  const h1Idle = new Set<net.Socket>();
  h1.on("connection", (socket: net.Socket) => {
    h1Idle.add(socket);
    socket.on("close", () => {
      h1Idle.delete(socket);
      h1Busy.delete(socket);
    });
  });
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    h1Idle.delete(socket);
    h1Busy.set(socket, (h1Busy.get(socket) ?? 0) + 1);
    if (stopping) res.shouldKeepAlive = false;
    res.once("close", () => {
      const left = (h1Busy.get(socket) ?? 1) - 1;
      if (left > 0) return void h1Busy.set(socket, left);
      h1Busy.delete(socket);
      if (socket.destroyed) return;
      if (stopping) socket.end();
      else h1Idle.add(socket);
    });
  });
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  // Small messages (one record, one result) must not wait for Nagle's algorithm.
  const front = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.once("readable", () => {
      const head: Buffer | null = socket.read(Math.min(socket.readableLength, http2Preface.length)) ?? socket.read();
      if (head === null) {
        socket.destroy();
        return;
      }
      socket.unshift(head);
      const isH2 = head
        .subarray(0, Math.min(head.length, http2Preface.length))
        .equals(http2Preface.subarray(0, Math.min(head.length, http2Preface.length)));
      (isH2 ? h2 : h1).emit("connection", socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const addr = front.address() as net.AddressInfo;
  const host = options.host === undefined || options.host === "0.0.0.0" ? "127.0.0.1" : options.host;
  let closing: Promise<void> | undefined;
  return {
    address: `${host}:${addr.port}`,
    port: addr.port,
    setHealth: (s) => health.set(s),
    close(graceMs = 2_000) {
      closing ??= (async () => {
        health.set("NOT_SERVING");
        stopping = true;
        const closed = new Promise<void>((resolve) => front.close(() => resolve()));
        for (const s of sessions) s.close();
        for (const s of h1Idle) s.end();
        const timer = setTimeout(() => {
          for (const s of sessions) s.destroy();
          for (const s of sockets) s.destroy();
        }, graceMs);
        timer.unref();
        await closed;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}

function collectFiles(services: DescService[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    for (const d of f.dependencies) visit(d);
  };
  for (const s of services) visit(s.file);
  return [...seen.values()];
}
