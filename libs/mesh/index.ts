import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { packageRoot } from "../cli/paths.js";

/** Options of {@link startMesh}. */
export interface MeshOptions {
  /** Model repository folder. */
  models: string;
  /** Pipeline spec files the state service loads at start. */
  pipelines: string[];
  /** Inference processes, default 2. */
  inference?: number;
  /** Host to bind, default 127.0.0.1. */
  host?: string;
  /**
   * First port: ingest gets it, then preprocess, balancer, state, inference 1..N.
   * 0 (the default) takes free ports.
   */
  portBase?: number;
  /** Default pipeline of ingest, default "penguins". */
  defaultPipeline?: string;
  /** NATS URLs (comma-separated): state on JetStream KV, heartbeats on NATS subjects. */
  nats?: string;
  /** This Sluice node's name: prefixes inference node ids (`<node>-inference-1`). */
  node?: string;
  /** JetStream KV replicas when creating buckets, default 1. */
  kvReplicas?: number;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Called with each line a service prints (stdout and stderr), prefixed by its name. */
  onLog?: (name: string, line: string) => void;
  /** How long a service may take to listen, ms, default 30000. */
  startTimeoutMs?: number;
}

/** One service process of a running mesh. */
export interface MeshService {
  name: string;
  address: string;
  process: ChildProcess;
}

/** A running mesh: every service is a child process. */
export interface Mesh {
  readonly services: MeshService[];
  /** Address of one service by name ("ingest", "state", "inference-1", ...). */
  address(name: string): string;
  /** Starts one more service (e.g. an inference node that was stopped). */
  restart(name: string): Promise<MeshService>;
  /** SIGTERM to every service, SIGKILL to any still there after `graceMs`; idempotent. */
  stop(graceMs?: number): Promise<void>;
}

// Services always run compiled (from source too, e.g. under vitest): `npm run build` first.
const servicesDir = path.join(packageRoot, "dist", "services");

function entry(service: string): string {
  return path.join(servicesDir, service, "main.js");
}

interface Spec {
  name: string;
  service: string;
  args: string[];
}

/**
 * Starts state, the inference nodes, balancer, preprocess and ingest as separate Node
 * processes, each told its peers' addresses, and resolves when all of them listen.
 * @throws Error with the service's own output when one fails to start.
 */
export async function startMesh(options: MeshOptions): Promise<Mesh> {
  const host = options.host ?? "127.0.0.1";
  const base = options.portBase ?? 0;
  const port = (i: number) => String(base === 0 ? 0 : base + i);
  const n = options.inference ?? 2;
  const running: MeshService[] = [];
  const specs = new Map<string, Spec>();
  const start = async (spec: Spec): Promise<MeshService> => {
    specs.set(spec.name, spec);
    const child = spawn(process.execPath, [entry(spec.service), ...spec.args], {
      env: {
        ...process.env,
        ...options.env,
        SLUICE_PARENT_PID: String(process.pid),
        OTEL_SERVICE_NAME: `sluice-${spec.name}`,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tail: string[] = [];
    const log = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      options.onLog?.(spec.name, line);
    };
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", log);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${spec.name} did not start in time:\n${tail.join("\n")}`)),
        options.startTimeoutMs ?? 30_000,
      );
      lines.on("line", (line) => {
        const m = /listening on (\S+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1] as string);
        } else log(line);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${spec.name} exited with ${code} before listening:\n${tail.join("\n")}`));
      });
    });
    const svc = { name: spec.name, address, process: child };
    const i = running.findIndex((s) => s.name === spec.name);
    if (i >= 0) running[i] = svc;
    else running.push(svc);
    return svc;
  };
  const common = ["--host", host];
  const natsArgs = options.nats ? ["--nats", options.nats] : [];
  const prefix = options.node ? `${options.node}-` : "";
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5_000) => {
    stopping ??= Promise.all(
      running.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.process.exitCode !== null || s.process.signalCode !== null) return resolve();
            const kill = setTimeout(() => s.process.kill("SIGKILL"), graceMs);
            s.process.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            s.process.kill("SIGTERM");
          }),
      ),
    ).then(() => undefined);
    return stopping;
  };
  try {
    const state = await start({
      name: "state",
      service: "state",
      args: [
        ...common,
        "--port",
        port(3),
        ...natsArgs,
        ...(options.node ? ["--node", options.node] : []),
        ...(options.kvReplicas ? ["--kv-replicas", String(options.kvReplicas)] : []),
        ...options.pipelines.flatMap((p) => ["--pipeline", p]),
      ],
    });
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        start({
          name: `inference-${i + 1}`,
          service: "inference",
          args: [
            ...common,
            "--port",
            port(4 + i),
            "--state",
            state.address,
            "--models",
            options.models,
            "--node",
            `${prefix}inference-${i + 1}`,
            ...natsArgs,
          ],
        }),
      ),
    );
    const balancer = await start({
      name: "balancer",
      service: "balancer",
      args: [...common, "--port", port(2), "--state", state.address, ...natsArgs],
    });
    const preprocess = await start({
      name: "preprocess",
      service: "preprocess",
      args: [
        ...common,
        "--port",
        port(1),
        "--state",
        state.address,
        "--balancer",
        balancer.address,
        ...(options.node ? ["--node", options.node] : []),
      ],
    });
    await start({
      name: "ingest",
      service: "ingest",
      args: [
        ...common,
        "--port",
        port(0),
        "--preprocess",
        preprocess.address,
        "--pipeline",
        options.defaultPipeline ?? "penguins",
      ],
    });
  } catch (e) {
    await stop(1_000);
    throw e;
  }
  // Inference nodes start in parallel: list services in a fixed order whatever finished first.
  const order = [...specs.keys()];
  running.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  return {
    services: running,
    address(name) {
      const s = running.find((x) => x.name === name);
      if (s === undefined) throw new Error(`no service ${name}`);
      return s.address;
    },
    async restart(name) {
      const spec = specs.get(name);
      if (spec === undefined) throw new Error(`no service ${name}`);
      const old = running.find((x) => x.name === name);
      if (old && old.process.exitCode === null && old.process.signalCode === null) {
        await new Promise<void>((resolve) => {
          old.process.once("exit", () => resolve());
          old.process.kill("SIGKILL");
        });
      }
      return start(spec);
    },
    stop,
  };
}
