import { parseArgs } from "node:util";
import { startTelemetry } from "../telemetry/index.js";

/** What a started service hands back to its runner. */
export interface StartedService {
  /** "host:port" it listens on. */
  address: string;
  /** Stops accepting, drains, closes; idempotent. */
  shutdown(): Promise<void>;
}

/** An option of a service's command line: `--name value`, or the environment variable `env`. */
export interface ServiceOption {
  env?: string;
  default?: string;
  multiple?: boolean;
}

/**
 * Runs one service as a process: parses `--key value` options (falling back to their
 * environment variables and defaults), starts telemetry, starts the service, prints
 * `<name> listening on <host:port>` on stdout, and shuts down in order on SIGTERM or SIGINT
 * (stop accepting → drain → close → flush telemetry), exiting 0.
 */
export async function runService(
  name: string,
  options: Record<string, ServiceOption>,
  start: (values: Record<string, string | string[] | undefined>) => Promise<StartedService>,
): Promise<void> {
  const spec = {
    host: { type: "string" as const },
    port: { type: "string" as const },
    ...Object.fromEntries(
      Object.entries(options).map(([k, o]) => [k, { type: "string" as const, multiple: o.multiple ?? false }]),
    ),
  };
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({ options: spec, strict: true, allowPositionals: false }));
  } catch (e) {
    process.stderr.write(
      `${name}: ${(e as Error).message}\noptions: ${Object.keys(spec)
        .map((k) => `--${k}`)
        .join(" ")}\n`,
    );
    process.exit(2);
  }
  const resolved = { ...values } as Record<string, string | string[] | undefined>;
  resolved.host ??= process.env.SLUICE_HOST ?? "127.0.0.1";
  resolved.port ??= process.env.SLUICE_PORT ?? "0";
  for (const [k, o] of Object.entries(options)) {
    if (resolved[k] !== undefined) continue;
    const fromEnv = o.env ? process.env[o.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== "") resolved[k] = o.multiple ? fromEnv.split(",") : fromEnv;
    else if (o.default !== undefined) resolved[k] = o.multiple ? [o.default] : o.default;
  }
  // The NATS client can reject a promise of its own during a failover (a consumer re-created on a
  // server that is still electing a leader): the connection recovers, so log it and go on.
  // Anything else unhandled still ends the process, as Node does by default.
  process.on("unhandledRejection", (e) => {
    if (e instanceof Error && (e.name === "NatsError" || e.constructor?.name === "NatsError")) {
      process.stderr.write(`${name}: NATS: ${e.message} (recovering)\n`);
      return;
    }
    throw e;
  });
  const telemetry = startTelemetry(name);
  let service: StartedService;
  try {
    service = await start(resolved);
  } catch (e) {
    process.stderr.write(`${name}: failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
    await telemetry.shutdown();
    process.exit(1);
  }
  process.stdout.write(`${name} listening on ${service.address}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 5_000);
    force.unref();
    await service.shutdown().catch(() => undefined);
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  // A parent that dies without signalling must not leave this process behind.
  if (process.env.SLUICE_PARENT_PID) {
    const parent = Number(process.env.SLUICE_PARENT_PID);
    setInterval(() => {
      try {
        process.kill(parent, 0);
      } catch {
        void stop();
      }
    }, 1_000).unref();
  }
}

/** Reads a positive integer option, with a clear error naming it. */
export function intOption(
  values: Record<string, string | string[] | undefined>,
  key: string,
  fallback: number,
): number {
  const v = values[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${key} must be a non-negative number, got ${String(v)}`);
  return n;
}

/** Reads a string option that must be present. */
export function requiredOption(values: Record<string, string | string[] | undefined>, key: string): string {
  const v = values[key];
  if (typeof v !== "string" || v === "") throw new Error(`--${key} is required`);
  return v;
}
