#!/usr/bin/env node
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { BalancerService } from "../gen/sluice/v1/balancer_pb.js";
import { StateService } from "../gen/sluice/v1/state_pb.js";
import { startMesh } from "../mesh/index.js";
import { fitPipeline, parsePipelineSpec } from "../pipeline/index.js";
import { isSourceError } from "../records/index.js";
import { buckets, type NodeEntry } from "../state/index.js";
import { connectTo } from "../transport/index.js";
import { penguinsSpec, vegaDataset, workDir } from "./paths.js";
import { sendFile } from "./send.js";
import { loadRows, trainFromData } from "./train.js";

const usage = `sluice — stream records through ML models

Usage:
  sluice demo [--inference N]                 train the penguins model, start the mesh, stream penguins.json, print results
  sluice up [--inference N] [--port-base P]   start every service (ingest on P, default 7400); Ctrl-C stops
            [--host H] [--models DIR] [--pipeline FILE ...] [--nats URL[,URL...] --node NAME]
  sluice send FILE [--out FILE] [--ingest HOST:PORT] [--pipeline NAME] [--id-field F] [--format csv|json|jsonl] [--progress]
  sluice status [--state HOST:PORT] [--balancer HOST:PORT] [--node NAME]
  sluice state get|list|put|delete|watch BUCKET [KEY] [JSON] [--revision N]   read and change state on any node
  sluice job create|move|get|list NAME [STATE] [--from S] [--reason R]       job lifecycle (compare-and-set)
  sluice params MODEL [key=value ...]          show or change serving parameters (every node applies them live)
  sluice pipeline put FILE                     validate a pipeline spec and put it in force everywhere
  sluice fit --spec FILE --data FILE [--out FILE]
  sluice train [--spec FILE --data FILE] [--seed N] [--epochs N] [--models DIR] [--pipelines DIR]

Addresses: --ingest or SLUICE_INGEST (default: from .sluice/mesh.json — mesh-NAME.json with --node — else 127.0.0.1:7400).
Artifacts (models, fitted pipelines, mesh.json) go to .sluice/ or SLUICE_HOME.`;

function fail(message: string): never {
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(2);
}

interface MeshFile {
  services: Record<string, string>;
}

/** The Sluice node this command talks to (`--node` or SLUICE_NODE); picks its mesh file. */
let currentNode: string | undefined = process.env.SLUICE_NODE || undefined;

function meshFilePath(): string {
  return path.join(workDir(), currentNode ? `mesh-${currentNode}.json` : "mesh.json");
}

async function meshFile(): Promise<MeshFile | undefined> {
  const f = meshFilePath();
  if (!existsSync(f)) return undefined;
  return JSON.parse(await readFile(f, "utf8")) as MeshFile;
}

async function addressOf(name: string, flag: string | undefined, env: string, fallback: string): Promise<string> {
  const address = flag || process.env[env] || (await meshFile())?.services[name] || fallback;
  if (!/^[^\s:/]+:\d{1,5}$/.test(address) && !/^https?:\/\/\S+$/.test(address)) {
    fail(`${flag ? `--${name}` : env} must be HOST:PORT (e.g. 127.0.0.1:7400), got ${JSON.stringify(address)}`);
  }
  return address;
}

/** Trains the default penguins model and fitted pipeline unless they exist. */
async function ensureDefaults(quiet = false): Promise<{ models: string; pipeline: string }> {
  const models = path.join(workDir(), "models");
  const pipelines = path.join(workDir(), "pipelines");
  const pipeline = path.join(pipelines, "penguins.json");
  if (existsSync(path.join(models, "penguins-mlp", "1", "model.onnx")) && existsSync(pipeline))
    return { models, pipeline };
  const report = await trainFromData({
    specFile: penguinsSpec,
    dataFile: vegaDataset("penguins.json"),
    modelsDir: models,
    pipelinesDir: pipelines,
  });
  if (!quiet) {
    // stderr: stdout of `sluice up` is only the listening lines and "ready", for scripts.
    process.stderr.write(
      `trained penguins-mlp on ${report.trainRows} rows in ${report.seconds.toFixed(1)} s: held-out accuracy ${report.testAccuracy.toFixed(4)} on ${report.testRows} rows\n`,
    );
  }
  return { models, pipeline };
}

async function cmdUp(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      inference: { type: "string", default: "2" },
      "port-base": { type: "string", default: "7400" },
      host: { type: "string", default: "127.0.0.1" },
      models: { type: "string" },
      pipeline: { type: "string", multiple: true },
      nats: { type: "string" },
      node: { type: "string" },
      "kv-replicas": { type: "string" },
    },
  });
  if (values.node !== undefined) {
    if (!/^[A-Za-z0-9_-]+$/.test(values.node))
      fail(`--node must be letters, digits, - or _, got ${JSON.stringify(values.node)}`);
    currentNode = values.node;
  }
  const nats = values.nats ?? process.env.NATS_URL;
  const n = Number(values.inference);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    fail(`--inference must be a whole number from 1 to 64, got ${values.inference}`);
  const portBase = Number(values["port-base"]);
  if (!Number.isInteger(portBase) || portBase < 0 || portBase > 65_000) {
    fail(`--port-base must be a port number (0 for free ports), got ${values["port-base"]}`);
  }
  // A signal while services start must still stop them: remember it and stop once started.
  let signalled = false;
  let shutdown: (() => Promise<void>) | undefined;
  const onSignal = () => {
    signalled = true;
    void shutdown?.();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const defaults = values.models && values.pipeline ? undefined : await ensureDefaults();
  const mesh = await startMesh({
    inference: n,
    portBase,
    host: values.host,
    models: values.models ?? (defaults as { models: string }).models,
    pipelines: values.pipeline ?? [(defaults as { pipeline: string }).pipeline],
    onLog: (name, line) => process.stderr.write(`[${name}] ${line}\n`),
    ...(nats ? { nats } : {}),
    ...(currentNode ? { node: currentNode } : {}),
    ...(values["kv-replicas"] ? { kvReplicas: Number(values["kv-replicas"]) } : {}),
  }).catch((e: Error) => fail(e.message));
  let exiting = false;
  shutdown = async () => {
    if (exiting) return;
    exiting = true;
    await mesh.stop();
    await rm(meshFilePath(), { force: true });
    process.stdout.write("stopped\n");
    process.exit(0);
  };
  if (signalled) await shutdown();
  // Started through a wrapper (`npm run sluice -- up`) that is killed without passing the signal
  // on: when the parent goes, stop too rather than leave the mesh running.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void shutdown?.();
  }, 1_000).unref();
  for (const s of mesh.services) process.stdout.write(`${s.name} listening on ${s.address}\n`);
  await mkdir(workDir(), { recursive: true });
  await writeFile(
    meshFilePath(),
    JSON.stringify(
      { pid: process.pid, services: Object.fromEntries(mesh.services.map((s) => [s.name, s.address])) },
      null,
      2,
    ),
  );
  process.stdout.write("ready\n");
  for (const s of mesh.services) {
    s.process.on("exit", (code, signal) => {
      if (!exiting) process.stderr.write(`sluice: ${s.name} exited (${signal ?? code})\n`);
    });
  }
  await new Promise(() => {});
}

async function cmdSend(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      ingest: { type: "string" },
      pipeline: { type: "string" },
      "id-field": { type: "string" },
      format: { type: "string" },
      progress: { type: "boolean", default: false },
      node: { type: "string" },
    },
  });
  if (values.node) currentNode = values.node;
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) fail("send takes one FILE");
  if (!existsSync(file)) fail(`${file}: no such file`);
  if (values.format !== undefined && !["csv", "json", "jsonl"].includes(values.format))
    fail(`--format must be csv, json or jsonl`);
  const ingest = await addressOf("ingest", values.ingest, "SLUICE_INGEST", "127.0.0.1:7400");
  const out = values.out ? createWriteStream(values.out) : process.stdout;
  try {
    const report = await sendFile(file, {
      ingest,
      out,
      ...(values.pipeline ? { pipeline: values.pipeline } : {}),
      ...(values["id-field"] ? { idField: values["id-field"] } : {}),
      ...(values.format ? { format: values.format as "csv" | "json" | "jsonl" } : {}),
      progress: values.progress ? "always" : "auto",
    });
    if (values.out) await new Promise<void>((r) => (out as NodeJS.WritableStream).end(r));
    process.stderr.write(
      `${report.records} records: ${report.predictions} predictions, ${report.errors} errors in ${report.seconds.toFixed(2)} s\n`,
    );
  } catch (e) {
    if (isSourceError(e)) fail(`${(e as Error).message} (the records before it got their result lines)`);
    fail(`send to ${ingest} failed: ${(e as Error).message}`);
  }
}

async function cmdStatus(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { state: { type: "string" }, balancer: { type: "string" }, node: { type: "string" } },
  });
  if (values.node) currentNode = values.node;
  const mesh = await meshFile();
  const stateAddr = await addressOf("state", values.state, "SLUICE_STATE", "127.0.0.1:7403");
  const state = connectTo(StateService, stateAddr);
  const lines: string[] = [];
  if (mesh) {
    lines.push("services:");
    for (const [name, address] of Object.entries(mesh.services)) {
      const h = await connectTo(Health, address)
        .check({ service: "" }, { timeoutMs: 2_000 })
        .then((r) => (r.status === 1 ? "serving" : "not serving"))
        .catch(() => "down");
      lines.push(`  ${name.padEnd(14)} ${address.padEnd(22)} ${h}`);
    }
  }
  try {
    const [models, nodes, pipelines, services] = await Promise.all(
      ["models", "nodes", "pipelines", "services"].map((bucket) => state.list({ bucket }, { timeoutMs: 3_000 })),
    );
    lines.push("models:");
    for (const e of models?.entries ?? []) {
      const m = JSON.parse(e.value) as { state?: string; version?: string };
      lines.push(`  ${e.key.padEnd(20)} ${String(m.state).padEnd(10)} version ${m.version ?? "-"} (rev ${e.revision})`);
    }
    lines.push("inference nodes:");
    const balancerAddr = values.balancer ?? process.env.SLUICE_BALANCER ?? mesh?.services.balancer;
    const loads = balancerAddr
      ? await connectTo(BalancerService, balancerAddr)
          .listNodes({}, { timeoutMs: 2_000 })
          .catch(() => undefined)
      : undefined;
    for (const e of nodes?.entries ?? []) {
      const n = JSON.parse(e.value) as NodeEntry;
      const load = loads?.nodes.find((l) => l.id === e.key);
      const age = Date.now() - n.heartbeatMs;
      const applied = Object.entries(n.applied ?? {})
        .map(([m, rev]) => `${m}@rev${rev}`)
        .join(",");
      lines.push(
        `  ${e.key.padEnd(22)} ${n.address.padEnd(22)} ${load?.status ?? (age < 3000 ? "up" : "down")}  models ${n.models.join(",")}  params in force ${applied || "-"}  updated ${age} ms ago` +
          (load
            ? `  in flight ${load.inFlightRecords}  batches ${load.batchesRouted}  ewma ${load.ewmaLatencyMs.toFixed(2)} ms`
            : ""),
      );
    }
    lines.push("pipelines:");
    for (const e of pipelines?.entries ?? []) {
      const p = JSON.parse(e.value) as { model?: string };
      lines.push(`  ${e.key.padEnd(20)} model ${p.model} (rev ${e.revision})`);
    }
    lines.push("pipelines in force:");
    for (const e of services?.entries ?? []) {
      const s = JSON.parse(e.value) as {
        service?: string;
        node?: string;
        address?: string;
        pipelines?: Record<string, string>;
      };
      if (s.service !== "preprocess") continue;
      const inForce = Object.entries(s.pipelines ?? {})
        .map(([name, rev]) => `${name}@rev${rev}`)
        .join(", ");
      lines.push(`  ${String(s.node).padEnd(10)} preprocess ${String(s.address).padEnd(22)} ${inForce || "-"}`);
    }
  } catch (e) {
    fail(`state at ${stateAddr} is not reachable: ${(e as Error).message}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function cmdFit(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { spec: { type: "string" }, data: { type: "string" }, out: { type: "string" } },
  });
  if (!values.spec || !values.data) fail("fit needs --spec FILE and --data FILE");
  const spec = parsePipelineSpec(await readFile(values.spec, "utf8"));
  const fitted = fitPipeline(spec, await loadRows(values.data));
  const text = `${JSON.stringify(fitted, null, 2)}\n`;
  if (values.out) await writeFile(values.out, text);
  else process.stdout.write(text);
}

async function cmdTrain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      spec: { type: "string" },
      data: { type: "string" },
      seed: { type: "string", default: "42" },
      epochs: { type: "string" },
      models: { type: "string" },
      pipelines: { type: "string" },
    },
  });
  const report = await trainFromData({
    specFile: values.spec ?? penguinsSpec,
    dataFile: values.data ?? vegaDataset("penguins.json"),
    modelsDir: values.models ?? path.join(workDir(), "models"),
    pipelinesDir: values.pipelines ?? path.join(workDir(), "pipelines"),
    seed: Number(values.seed),
    ...(values.epochs ? { mlp: { epochs: Number(values.epochs) } } : {}),
  });
  process.stdout.write(
    `${report.spec.model}: trained on ${report.trainRows} rows, held out ${report.testRows}, skipped ${report.skipped}\n` +
      `classes ${report.classes.join(", ")}\n` +
      `train accuracy ${report.trainAccuracy.toFixed(4)}, held-out accuracy ${report.testAccuracy.toFixed(4)} (${report.seconds.toFixed(1)} s)\n` +
      `model ${report.modelPath}\npipeline ${report.specPath}\n`,
  );
}

async function cmdDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { inference: { type: "string", default: "2" } } });
  const models = path.join(workDir(), "models");
  const pipelines = path.join(workDir(), "pipelines");
  const data = vegaDataset("penguins.json");
  process.stdout.write(`1. training an MLP (64 relu → 64 relu → 3) on ${data}\n`);
  const report = await trainFromData({
    specFile: penguinsSpec,
    dataFile: data,
    modelsDir: models,
    pipelinesDir: pipelines,
  });
  process.stdout.write(
    `   held-out accuracy ${report.testAccuracy.toFixed(4)} on ${report.testRows} rows (train ${report.trainAccuracy.toFixed(4)} on ${report.trainRows}), ${report.seconds.toFixed(1)} s\n`,
  );
  process.stdout.write(
    `2. starting the mesh: state, ${values.inference} inference nodes, balancer, preprocess, ingest\n`,
  );
  const mesh = await startMesh({ inference: Number(values.inference), models, pipelines: [report.specPath] });
  try {
    for (const s of mesh.services) process.stdout.write(`   ${s.name} listening on ${s.address}\n`);
    const outFile = path.join(workDir(), "penguins-results.jsonl");
    process.stdout.write(`3. streaming all ${(await loadRows(data)).length} penguins through ingest → ${outFile}\n`);
    const sent = await sendFile(data, { ingest: mesh.address("ingest"), out: createWriteStream(outFile) });
    const results = (await readFile(outFile, "utf8"))
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            id: string;
            outputs?: { label: string; probabilities: number[] };
            error?: { code: string; message: string };
          },
      );
    const rows = await loadRows(data);
    let right = 0;
    let predicted = 0;
    for (const [i, r] of results.entries()) {
      if (r.outputs) {
        predicted++;
        if (r.outputs.label === rows[i]?.Species) right++;
      }
    }
    process.stdout.write(
      `   ${sent.records} results in ${sent.seconds.toFixed(2)} s: ${sent.predictions} predictions, ${sent.errors} errors\n`,
    );
    for (const i of [0, 3, 150, 300]) {
      const r = results[i];
      if (r === undefined) continue;
      const truth = String(rows[i]?.Species);
      process.stdout.write(
        r.outputs
          ? `   record ${r.id}: ${r.outputs.label} (p=${Math.max(...r.outputs.probabilities).toFixed(3)}), true species ${truth}\n`
          : `   record ${r.id}: error ${r.error?.code}: ${r.error?.message}\n`,
      );
    }
    process.stdout.write(
      `   accuracy through the mesh on every penguin with a prediction: ${(right / Math.max(predicted, 1)).toFixed(4)} (${right}/${predicted})\n`,
    );
    process.stdout.write(`   held-out accuracy of the model: ${report.testAccuracy.toFixed(4)}\n`);
  } finally {
    await mesh.stop();
  }
  process.stdout.write("4. mesh stopped\n");
}

// `sluice send FILE | head` closes stdout early: stop quietly, like other Unix tools.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

async function stateAt(argv: string[], extra: Record<string, { type: "string" | "boolean" }> = {}) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { state: { type: "string" }, node: { type: "string" }, ...extra },
  });
  if (typeof values.node === "string") currentNode = values.node;
  const address = await addressOf("state", values.state as string | undefined, "SLUICE_STATE", "127.0.0.1:7403");
  return {
    client: connectTo(StateService, address),
    values: values as Record<string, string | boolean | undefined>,
    positionals,
  };
}

function printEntry(
  e: { bucket: string; key: string; value: string; revision: bigint; present: boolean } | undefined,
): void {
  if (e === undefined) return;
  process.stdout.write(
    `${JSON.stringify({ bucket: e.bucket, key: e.key, revision: String(e.revision), ...(e.present ? { value: JSON.parse(e.value) } : { deleted: true }) })}\n`,
  );
}

async function cmdState(argv: string[]): Promise<void> {
  const [verb, ...args] = argv;
  const { client, values, positionals } = await stateAt(args, { revision: { type: "string" } });
  const [bucket, key, value] = positionals;
  if (bucket === undefined) fail("state needs a bucket: pipelines, models, nodes, jobs, sequences, or your own");
  switch (verb) {
    case "get":
      if (key === undefined) fail("state get BUCKET KEY");
      printEntry((await client.get({ bucket, key })).entry);
      return;
    case "list":
      for (const e of (await client.list({ bucket, prefix: key ?? "" })).entries) printEntry(e);
      return;
    case "put": {
      if (key === undefined || value === undefined) fail("state put BUCKET KEY JSON [--revision N]");
      const rev = values.revision as string | undefined;
      printEntry(
        (await client.put({ bucket, key, value, ...(rev !== undefined ? { expectedRevision: BigInt(rev) } : {}) }))
          .entry,
      );
      return;
    }
    case "delete":
      if (key === undefined) fail("state delete BUCKET KEY");
      await client.delete({ bucket, key });
      return;
    case "watch":
      for await (const res of client.watch({ bucket, prefix: key ?? "" })) {
        if (res.currentDone) process.stderr.write("(current entries done; watching)\n");
        else printEntry(res.entry);
      }
      return;
    default:
      fail("state get|list|put|delete|watch BUCKET [KEY] [JSON]");
  }
}

async function cmdJob(argv: string[]): Promise<void> {
  const [verb, ...args] = argv;
  const { client, values, positionals } = await stateAt(args, { from: { type: "string" }, reason: { type: "string" } });
  const [name, to] = positionals;
  if (verb === "list") {
    for (const e of (await client.list({ bucket: buckets.jobs })).entries) printEntry(e);
    return;
  }
  if (name === undefined) fail("job create|move|get NAME [STATE]");
  if (verb === "create") {
    const created = await client
      .put({
        bucket: buckets.jobs,
        key: name,
        value: JSON.stringify({ name, state: "initialized" }),
        expectedRevision: 0n,
      })
      .catch((e: unknown) =>
        fail(
          ConnectError.from(e).code === Code.FailedPrecondition
            ? `job ${name} already exists (sluice job get ${name})`
            : ConnectError.from(e).message,
        ),
      );
    printEntry(created.entry);
  } else if (verb === "move") {
    if (to === undefined) fail("job move NAME STATE [--from STATE] [--reason TEXT]");
    const res = await client.transition({
      bucket: buckets.jobs,
      key: name,
      to,
      from: (values.from as string | undefined) ?? "",
      reason: (values.reason as string | undefined) ?? "",
    });
    process.stderr.write(`${name}: ${res.previous} → ${to}\n`);
    printEntry(res.entry);
  } else if (verb === "get") {
    printEntry((await client.get({ bucket: buckets.jobs, key: name })).entry);
  } else fail("job create|move|get|list");
}

/** `sluice params MODEL key=value ...`: changes serving parameters with a compare-and-set. */
async function cmdParams(argv: string[]): Promise<void> {
  const { client, positionals } = await stateAt(argv);
  const [model, ...pairs] = positionals;
  if (model === undefined)
    fail("params MODEL [maxBatchSize=N] [maxQueueDelayMs=N] [maxQueueRecords=N] [intraOpThreads=N] [cache=on|off]");
  const known = new Set(["maxBatchSize", "maxQueueDelayMs", "maxQueueRecords", "intraOpThreads", "cache"]);
  for (let attempt = 0; attempt < 20; attempt++) {
    const notFound = (): never => fail(`model ${model} not found in the registry (sluice status lists the models)`);
    const cur = await client
      .get({ bucket: buckets.models, key: model })
      .catch((e: unknown) =>
        ConnectError.from(e).code === Code.NotFound ? notFound() : fail(ConnectError.from(e).message),
      );
    const entry = cur.entry ?? notFound();
    const value = JSON.parse(entry.value) as { params?: Record<string, unknown> };
    const params = { ...(value.params ?? {}) };
    for (const pair of pairs) {
      const [k, v, extra] = pair.split("=");
      if (k === undefined || v === undefined || extra !== undefined || !known.has(k))
        fail(`${pair}: expected one of ${[...known].join(", ")} as key=value`);
      if (k === "cache") {
        if (!["on", "off", "true", "false"].includes(v)) fail(`cache must be on or off, got ${JSON.stringify(v)}`);
        params[k] = v === "on" || v === "true";
      } else {
        const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
        const min = k === "maxQueueDelayMs" ? 0 : 1;
        const max = k === "intraOpThreads" ? 64 : 10_000_000;
        if (!Number.isInteger(n) || n < min || n > max)
          fail(`${k} must be a whole number from ${min} to ${max}, got ${v}`);
        params[k] = n;
      }
    }
    if (pairs.length === 0) {
      process.stdout.write(`${JSON.stringify({ model, revision: String(entry.revision), params })}\n`);
      return;
    }
    const ok = await client
      .put({
        bucket: buckets.models,
        key: model,
        value: JSON.stringify({ ...value, params }),
        expectedRevision: entry.revision,
      })
      .then((r) => {
        printEntry(r.entry);
        return true;
      })
      .catch(() => false);
    if (ok) return;
  }
  fail("too many concurrent changes; try again");
}

/** `sluice pipeline put FILE`: validates a spec and makes it the one in force everywhere. */
async function cmdPipeline(argv: string[]): Promise<void> {
  const [verb, ...args] = argv;
  const { client, positionals } = await stateAt(args);
  const [file] = positionals;
  if (verb !== "put" || file === undefined) fail("pipeline put FILE");
  const spec = parsePipelineSpec(await readFile(file, "utf8"));
  printEntry((await client.put({ bucket: buckets.pipelines, key: spec.name, value: JSON.stringify(spec) })).entry);
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (argv: string[]) => Promise<void>> = {
  up: cmdUp,
  send: cmdSend,
  status: cmdStatus,
  fit: cmdFit,
  train: cmdTrain,
  demo: cmdDemo,
  state: cmdState,
  job: cmdJob,
  params: cmdParams,
  pipeline: cmdPipeline,
};
if (command === undefined || command === "help" || command === "--help" || command === "-h") {
  process.stdout.write(`${usage}\n`);
} else {
  const run = commands[command];
  if (run === undefined) fail(`unknown command ${command}\n\n${usage}`);
  try {
    await run(rest);
  } catch (e) {
    fail((e as Error).message);
  }
}
