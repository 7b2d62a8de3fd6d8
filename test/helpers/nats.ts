import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/** Path of the nats-server binary; `NATS_SERVER` overrides Debian's. */
export const natsServerBinary = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";

/** One nats-server process started by a test. */
export interface NatsServer {
  /** Server name (`-server_name`). */
  name: string;
  /** Client URL, `nats://127.0.0.1:<port>`. */
  url: string;
  port: number;
  monitorPort: number;
  /** JetStream store directory (kept across {@link NatsServer.restart}). */
  storeDir: string;
  /** True while the process runs. */
  readonly running: boolean;
  /** Sends `signal` (default SIGTERM) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same ports and store directory; kills it first if it still runs. */
  restart(): Promise<void>;
  /** Kills the server (SIGKILL if SIGTERM is not enough) and removes its temp directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream with a temporary store directory, default true. */
  jetstream?: boolean;
  /** Server name, default `n<port>`. */
  name?: string;
}

/** A cluster of servers started by {@link startNatsCluster}. */
export interface NatsCluster {
  servers: NatsServer[];
  /** Client URLs of all servers. */
  urls: string[];
  /** Stops every server. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Never leave a server behind, even when the test process dies without running afterAll. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const p of live) {
      try {
        p.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    live.clear();
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      killAll();
      process.kill(process.pid, sig);
    });
  }
}

/** A port that was free a moment ago (bound on 127.0.0.1, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr !== null ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the monitor's `/healthz` until it answers 200 (JetStream ready when enabled). */
async function waitHealthy(
  monitorPort: number,
  proc: ChildProcess,
  log: () => string,
  timeoutMs: number,
  query = "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`nats-server exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${log()}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz${query}`, {
        signal: AbortSignal.timeout(1_000),
      });
      last = `${res.status} ${await res.text()}`;
      if (res.ok) return;
    } catch (e) {
      last = String(e);
    }
    await sleep(50);
  }
  throw new Error(`nats-server on monitor port ${monitorPort} not healthy after ${timeoutMs} ms (${last}):\n${log()}`);
}

interface Spec {
  name: string;
  port: number;
  monitorPort: number;
  jetstream: boolean;
  cluster?: { port: number; name: string; routes: string[] };
}

function makeServer(spec: Spec): { server: NatsServer; start: (healthQuery: string) => Promise<void> } {
  installExitHook();
  const dir = mkdtempSync(path.join(tmpdir(), "sluice-nats-"));
  const storeDir = path.join(dir, "js");
  let proc: ChildProcess | undefined;
  let output = "";
  let stopped = false;
  const args = () => {
    const a = ["-a", "127.0.0.1", "-p", String(spec.port), "-m", String(spec.monitorPort), "--server_name", spec.name];
    if (spec.jetstream) a.push("-js", "-sd", storeDir);
    if (spec.cluster !== undefined) {
      a.push("--cluster", `nats://127.0.0.1:${spec.cluster.port}`, "--cluster_name", spec.cluster.name);
      if (spec.cluster.routes.length > 0) a.push("--routes", spec.cluster.routes.join(","));
    }
    return a;
  };
  const spawnIt = () => {
    output = "";
    const p = spawn(natsServerBinary, args(), { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b: Buffer) => {
      // Keep the tail only: enough to explain a failed start.
      output = (output + b.toString()).slice(-8_000);
    };
    p.stdout?.on("data", keep);
    p.stderr?.on("data", keep);
    live.add(p);
    p.on("exit", () => live.delete(p));
    proc = p;
    return p;
  };
  const isRunning = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  const kill = async (signal: NodeJS.Signals = "SIGTERM") => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill(signal);
    // A server that ignores SIGTERM for too long (lame duck, big store) gets SIGKILL.
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  };
  let healthQuery = "";
  const start = async (query: string) => {
    healthQuery = query;
    const p = spawnIt();
    await waitHealthy(spec.monitorPort, p, () => output, 20_000, query);
  };
  const server: NatsServer = {
    name: spec.name,
    url: `nats://127.0.0.1:${spec.port}`,
    port: spec.port,
    monitorPort: spec.monitorPort,
    storeDir,
    get running() {
      return isRunning();
    },
    kill,
    async restart() {
      if (stopped) throw new Error(`${spec.name} was stopped`);
      await kill("SIGTERM");
      await start(healthQuery);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return { server, start };
}

/** Starts one nats-server on free ports (client and monitor) and waits until it is healthy. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const monitorPort = await freePort();
  const { server, start } = makeServer({
    name: options.name ?? `n${port}`,
    port,
    monitorPort,
    jetstream: options.jetstream ?? true,
  });
  try {
    await start(options.jetstream === false ? "" : "?js-enabled-only=true");
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/**
 * Starts `size` JetStream servers that route to each other as one cluster (each with its own
 * store directory), and waits until every one is healthy (JetStream meta group formed).
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const clusterName = `sluice${process.pid}`;
  const ports = await Promise.all(
    Array.from({ length: size }, async () => ({
      port: await freePort(),
      monitor: await freePort(),
      cluster: await freePort(),
    })),
  );
  const made = ports.map((p, i) =>
    makeServer({
      name: `s${i + 1}`,
      port: p.port,
      monitorPort: p.monitor,
      jetstream: true,
      cluster: {
        port: p.cluster,
        name: clusterName,
        routes: ports.filter((_, j) => j !== i).map((q) => `nats://127.0.0.1:${q.cluster}`),
      },
    }),
  );
  const servers = made.map((m) => m.server);
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    // Plain /healthz: in a cluster it answers 200 once JetStream is current with the meta leader.
    await Promise.all(made.map((m) => m.start("")));
  } catch (e) {
    await stop();
    throw e;
  }
  return { servers, urls: servers.map((s) => s.url), stop };
}
