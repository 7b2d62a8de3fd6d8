import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packageRoot, penguinsSpec, vegaDataset } from "../../libs/cli/paths.js";

// The CLI as a user runs it: the compiled entry point (`npm run build` first), in its own
// process, from a scratch folder, with artifacts in a scratch SLUICE_HOME.
const cli = path.join(packageRoot, "dist", "libs", "cli", "sluice.js");
const penguins = vegaDataset("penguins.json");
const species = ["Adelie", "Chinstrap", "Gentoo"];

const scratch: string[] = [];
function tempDir(name: string): string {
  const d = mkdtempSync(path.join(tmpdir(), `sluice-cli-${name}-`));
  scratch.push(d);
  return d;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `sluice <args>` to the end. */
function sluice(args: string[], opts: { home: string; cwd: string; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, SLUICE_HOME: opts.home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sluice ${args.join(" ")} ran over ${opts.timeoutMs ?? 60_000} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A random base in 20000–50000 with `count` consecutive free ports. */
async function freePortBase(count = 10): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await portFree(p);
    if (free) return base;
  }
  throw new Error("no 10 consecutive free ports found");
}

/** The pids of the direct children of `pid` (the service processes of `sluice up`). */
function childPids(pid: number): Array<{ pid: number; command: string }> {
  let out = "";
  try {
    out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    // ps exits 1 when there are none.
  }
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((l) => {
      const [p, ...rest] = l.split(/\s+/);
      return { pid: Number(p), command: rest.join(" ") };
    });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A running `sluice up`: its process, its stdout lines so far, and a way to wait for a line. */
interface Up {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<void>;
}

const started: Up[] = [];
const servicePids: number[] = [];

function startUp(args: string[], opts: { home: string; cwd: string }): Up {
  const child = spawn(process.execPath, [cli, "up", ...args], {
    cwd: opts.cwd,
    env: { ...process.env, SLUICE_HOME: opts.home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (c: string) => {
    partial += c;
    const parts = partial.split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    for (const w of waiters) w();
  });
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      resolve({ code, signal });
      for (const w of waiters) w();
    }),
  );
  const up: Up = {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLine(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (lines.some(match)) {
            done();
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(
              new Error(`sluice up exited (${child.exitCode ?? child.signalCode}):\n${lines.join("\n")}\n${stderr}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`no such line from sluice up in ${timeoutMs} ms:\n${lines.join("\n")}\n${stderr.slice(-3000)}`),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
  started.push(up);
  return up;
}

afterAll(() => {
  // Whatever a failed test left behind: only processes this file started.
  for (const up of started) if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill("SIGKILL");
  for (const pid of servicePids) if (alive(pid)) process.kill(pid, "SIGKILL");
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

const listening = /^(\S+) listening on (\S+:\d+)$/;

/** Checks the lines `sluice up` printed: one per service, the addresses the port base gives, then ready. */
function checkUpOutput(up: Up, base: number, inference: number): Map<string, string> {
  const names = [
    "state",
    ...Array.from({ length: inference }, (_, i) => `inference-${i + 1}`),
    "balancer",
    "preprocess",
    "ingest",
  ];
  const readyAt = up.lines.indexOf("ready");
  expect(readyAt, up.lines.join("\n")).toBe(names.length);
  const printed = up.lines.slice(0, readyAt);
  for (const l of printed) expect(l).toMatch(listening);
  const addresses = new Map(printed.map((l) => listening.exec(l)?.slice(1, 3) as [string, string]));
  // Exactly one line per service.
  expect([...addresses.keys()].sort()).toEqual([...names].sort());
  expect(addresses.size).toBe(printed.length);
  // Started in dependency order: state first, the inference nodes (in any order), then balancer, preprocess, ingest.
  expect(printed.map((l) => listening.exec(l)?.[1]).slice(inference + 1)).toEqual(["balancer", "preprocess", "ingest"]);
  expect(listening.exec(printed[0] ?? "")?.[1]).toBe("state");
  // The ports the port base gives (ingest on the base itself).
  const expected: Record<string, number> = { ingest: base, preprocess: base + 1, balancer: base + 2, state: base + 3 };
  for (let i = 1; i <= inference; i++) expected[`inference-${i}`] = base + 3 + i;
  for (const [name, port] of Object.entries(expected)) expect(addresses.get(name)).toBe(`127.0.0.1:${port}`);
  return addresses;
}

/** Stops `sluice up` with `signal` and checks that it exits 0 in time and takes its services with it. */
async function stopAndCheck(
  up: Up,
  signal: NodeJS.Signals,
  services: Array<{ pid: number }>,
  addresses: Map<string, string>,
) {
  const t0 = Date.now();
  up.child.kill(signal);
  const exit = await Promise.race([
    up.exited,
    new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 10_000)),
  ]);
  expect(exit, `sluice up still running 10 s after ${signal}`).not.toBe("late");
  expect(exit).toEqual({ code: 0, signal: null });
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(up.lines.at(-1)).toBe("stopped");
  const left = services.filter((s) => alive(s.pid));
  expect(left, `service processes left after ${signal}`).toEqual([]);
  // And nothing listens on their ports any more.
  for (const address of addresses.values()) {
    expect(await portFree(Number(address.split(":")[1])), `${address} still taken`).toBe(true);
  }
}

describe("sluice up / send / status", () => {
  let home: string;
  let cwd: string;

  beforeAll(() => {
    home = tempDir("home");
    cwd = tempDir("cwd");
  });

  it("up --inference 2 starts every service, send streams all penguins in order, status shows the model and nodes, SIGTERM stops all", async () => {
    const base = await freePortBase();
    const up = startUp(["--inference", "2", "--port-base", String(base)], { home, cwd });
    await up.waitForLine((l) => l === "ready", 90_000);
    const addresses = checkUpOutput(up, base, 2);

    const services = childPids(up.child.pid as number);
    servicePids.push(...services.map((s) => s.pid));
    expect(services.length, JSON.stringify(services)).toBe(6);
    for (const s of services) expect(s.command).toMatch(/node.*dist\/services\/\w+\/main\.js/);
    // The artifacts went to SLUICE_HOME, not the working folder.
    expect(readFileSync(path.join(home, "models", "penguins-mlp", "1", "model.onnx")).length).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(path.join(home, "mesh.json"), "utf8")).services.ingest).toBe(`127.0.0.1:${base}`);

    const out = path.join(cwd, "results.jsonl");
    const sent = await sluice(["send", penguins, "--ingest", addresses.get("ingest") as string, "--out", out], {
      home,
      cwd,
    });
    expect(sent.code, sent.stderr).toBe(0);
    const results = readFileSync(out, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { id: string; outputs?: { label: string }; error?: unknown });
    expect(results.length).toBe(344);
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: 344 }, (_, i) => String(i + 1)));
    for (const r of results) expect(species, JSON.stringify(r)).toContain(r.outputs?.label);
    // The model is right about (nearly) every penguin.
    const rows = JSON.parse(readFileSync(penguins, "utf8")) as Array<{ Species: string }>;
    const right = results.filter((r, i) => r.outputs?.label === rows[i]?.Species).length;
    expect(right / 344).toBeGreaterThanOrEqual(0.95);
    expect(sent.stderr).toContain("344 records: 344 predictions, 0 errors");

    const status = await sluice(["status"], { home, cwd, timeoutMs: 30_000 });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^\s+penguins-mlp\s+ready\b/m);
    const nodeLines = status.stdout.split("\n").filter((l) => /^\s+inference-\d+\s/.test(l) && /models/.test(l));
    expect(nodeLines.length, status.stdout).toBe(2);
    for (const l of nodeLines) expect(l).toMatch(/\sup\s/);
    for (const name of addresses.keys())
      expect(status.stdout).toMatch(new RegExp(`^\\s+${name}\\s+\\S+\\s+serving$`, "m"));

    await stopAndCheck(up, "SIGTERM", services, addresses);
  }, 180_000);

  it("up --inference 1 stops on SIGINT (Ctrl-C) with every service gone", async () => {
    const base = await freePortBase();
    const up = startUp(["--inference", "1", "--port-base", String(base)], { home, cwd });
    await up.waitForLine((l) => l === "ready", 90_000);
    const addresses = checkUpOutput(up, base, 1);
    const services = childPids(up.child.pid as number);
    servicePids.push(...services.map((s) => s.pid));
    expect(services.length, JSON.stringify(services)).toBe(5);
    const status = await sluice(["status"], { home, cwd, timeoutMs: 30_000 });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^\s+penguins-mlp\s+ready\b/m);
    expect(status.stdout).toMatch(/^\s+inference-1\s+\S+\s+up\s/m);
    await stopAndCheck(up, "SIGINT", services, addresses);
  }, 150_000);
});

describe("sluice train / fit", () => {
  it("train reaches a held-out accuracy of at least 0.95, and the same seed gives a byte-identical model", async () => {
    const cwd = tempDir("train");
    const [a, b] = [tempDir("train-a"), tempDir("train-b")];
    const first = await sluice(["train"], { home: a, cwd });
    expect(first.code, first.stderr).toBe(0);
    const acc = /held-out accuracy (\d+\.\d+)/.exec(first.stdout);
    expect(acc, first.stdout).not.toBeNull();
    expect(Number(acc?.[1])).toBeGreaterThanOrEqual(0.95);
    const second = await sluice(["train"], { home: b, cwd });
    expect(second.code, second.stderr).toBe(0);
    const modelA = readFileSync(path.join(a, "models", "penguins-mlp", "1", "model.onnx"));
    const modelB = readFileSync(path.join(b, "models", "penguins-mlp", "1", "model.onnx"));
    expect(modelA.length).toBeGreaterThan(1000);
    expect(modelA.equals(modelB), "model.onnx differs between two seeded runs").toBe(true);
    // The printed paths are where the files are.
    expect(first.stdout).toContain(path.join(a, "models", "penguins-mlp", "1", "model.onnx"));
    expect(first.stdout).toContain(path.join(a, "pipelines", "penguins.json"));
  }, 120_000);

  it("fit prints the spec with fitted stats", async () => {
    const cwd = tempDir("fit");
    const fit = await sluice(["fit", "--spec", penguinsSpec, "--data", penguins], { home: cwd, cwd });
    expect(fit.code, fit.stderr).toBe(0);
    const spec = JSON.parse(fit.stdout) as {
      name: string;
      model: string;
      fields: Array<{ name: string; source: string; type: string; stats?: Record<string, unknown> }>;
    };
    expect(spec.name).toBe("penguins");
    expect(spec.model).toBe("penguins-mlp");
    expect(spec.fields.length).toBeGreaterThan(0);
    for (const f of spec.fields) expect(f.stats, f.name).toBeDefined();
    // The stats are the data's: the mean of one numeric column, computed here.
    const rows = JSON.parse(readFileSync(penguins, "utf8")) as Array<Record<string, unknown>>;
    const beak = spec.fields.find((f) => f.source === "Beak Length (mm)");
    const values = rows.map((r) => r["Beak Length (mm)"]).filter((v): v is number => typeof v === "number");
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    expect(beak?.stats?.mean as number).toBeCloseTo(mean, 6);
    expect(beak?.stats?.min).toBe(Math.min(...values));
    expect(beak?.stats?.max).toBe(Math.max(...values));
  }, 60_000);
});

describe("sluice usage errors", () => {
  it("an unknown command exits 2 with the usage", async () => {
    const cwd = tempDir("usage");
    const r = await sluice(["frobnicate"], { home: cwd, cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command frobnicate");
    expect(r.stderr).toContain("Usage:");
    expect(r.stderr).toContain("sluice send FILE");
  });

  it("send without a file fails with a clear message", async () => {
    const cwd = tempDir("usage");
    const r = await sluice(["send"], { home: cwd, cwd });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/send takes one FILE/);
    const missing = await sluice(["send", path.join(cwd, "nope.json")], { home: cwd, cwd });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("nope.json: no such file");
  });

  it("help prints the usage and exits 0", async () => {
    const cwd = tempDir("usage");
    const r = await sluice(["--help"], { home: cwd, cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage:");
  });
});
