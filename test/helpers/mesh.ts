import { mkdtempSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { penguinsSpec, vegaDataset } from "../../libs/cli/paths.js";
import { loadRows, type TrainReport, trainFromData } from "../../libs/cli/train.js";
import { type Mesh, type MeshOptions, startMesh } from "../../libs/mesh/index.js";
import { compilePipeline, parsePipelineSpec } from "../../libs/pipeline/index.js";

/** The penguins model and fitted pipeline, trained once per test process into a temp folder. */
export interface Artifacts {
  dir: string;
  models: string;
  pipelines: string;
  pipelineFile: string;
  report: TrainReport;
}

let artifacts: Promise<Artifacts> | undefined;

/** Trains the penguins model (once per process) with the project's own code. */
export function penguinsArtifacts(): Promise<Artifacts> {
  artifacts ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "sluice-test-"));
    const models = path.join(dir, "models");
    const pipelines = path.join(dir, "pipelines");
    const report = await trainFromData({
      specFile: penguinsSpec,
      dataFile: vegaDataset("penguins.json"),
      modelsDir: models,
      pipelinesDir: pipelines,
    });
    return { dir, models, pipelines, pipelineFile: report.specPath, report };
  })();
  return artifacts;
}

/** The penguins records as the data file holds them. */
export function penguinRows(): Promise<Array<Record<string, unknown>>> {
  return loadRows(vegaDataset("penguins.json"));
}

/** Starts a mesh of separate processes on free ports, serving the penguins pipeline. */
export async function startPenguinMesh(options: Partial<MeshOptions> = {}): Promise<Mesh> {
  const a = await penguinsArtifacts();
  return startMesh({
    inference: 2,
    models: a.models,
    pipelines: [a.pipelineFile],
    portBase: 0,
    ...options,
  });
}

/**
 * The same preprocessing and model run in this process: probabilities per record
 * (undefined for records the pipeline rejects).
 */
export async function referencePredict(rows: Array<Record<string, unknown>>): Promise<Array<number[] | undefined>> {
  const a = await penguinsArtifacts();
  const pipeline = compilePipeline(parsePipelineSpec(await readFile(a.pipelineFile, "utf8")));
  const t = pipeline.transformRows(rows);
  const session = await ort.InferenceSession.create(path.join(a.models, pipeline.spec.model, "1", "model.onnx"));
  const out = await session.run({
    [pipeline.spec.input]: new ort.Tensor("float32", t.features, [t.rows.length, pipeline.width]),
  });
  const probs = out.probabilities?.data as Float32Array;
  const classes = probs.length / Math.max(t.rows.length, 1);
  const result: Array<number[] | undefined> = new Array(rows.length).fill(undefined);
  t.rows.forEach((r, i) => {
    result[r] = Array.from(probs.subarray(i * classes, (i + 1) * classes));
  });
  await session.release();
  return result;
}
