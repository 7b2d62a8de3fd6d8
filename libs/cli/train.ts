import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { accuracy, type MlpOptions, mlpToOnnx, predictMlp, splitTrainTest, trainMlp } from "../model/index.js";
import { compilePipeline, fitPipeline, labelIndex, type PipelineSpec, parsePipelineSpec } from "../pipeline/index.js";
import { readRecords } from "../records/index.js";

/** Options of {@link trainFromData}. */
export interface TrainOptions {
  /** Pipeline spec file (JSON or YAML) with a label. */
  specFile: string;
  /** Data file (CSV, JSON array, JSONL). */
  dataFile: string;
  /** Model repository to write `<model>/1/model.onnx` and `config.json` into. */
  modelsDir: string;
  /** Folder to write the fitted spec `<pipeline>.json` into. */
  pipelinesDir: string;
  /** Share of labelled rows held out, default 0.2. */
  testFraction?: number;
  /** Seed of the split and the training, default 42. */
  seed?: number;
  mlp?: MlpOptions;
}

/** What {@link trainFromData} produced. */
export interface TrainReport {
  spec: PipelineSpec;
  specPath: string;
  modelPath: string;
  trainRows: number;
  testRows: number;
  /** Rows skipped: label missing or unknown, or features not cleanable. */
  skipped: number;
  testAccuracy: number;
  trainAccuracy: number;
  classes: string[];
  /** Indices (into the data file's records) of the held-out rows. */
  testRecordIndices: number[];
  seconds: number;
}

/** Reads every record of a data file into memory, failing on the first unreadable one. */
export async function loadRows(file: string): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = [];
  for await (const r of readRecords(file)) {
    if (r.error) throw new Error(`${file}: ${r.error.message}`);
    rows.push(r.fields ?? {});
  }
  return rows;
}

/**
 * Fits a pipeline's statistics on the training split only, trains the MLP on the cleaned
 * features, measures held-out accuracy, and writes the fitted spec and the ONNX model.
 * Seeded: the same inputs give byte-identical outputs.
 */
export async function trainFromData(options: TrainOptions): Promise<TrainReport> {
  const started = performance.now();
  const seed = options.seed ?? 42;
  const raw = parsePipelineSpec(await readFile(options.specFile, "utf8"));
  if (raw.label === undefined) throw new Error(`${options.specFile}: training needs a label (label.field)`);
  const rows = await loadRows(options.dataFile);
  // Class names from all rows (no statistics leak: only the set of labels).
  const classes = fitPipeline(raw, rows).label?.classes ?? [];
  const withClasses: PipelineSpec = { ...raw, label: { ...raw.label, classes } };
  const labels = labelIndex(withClasses, rows).indices;
  const labelled: number[] = [];
  for (let i = 0; i < rows.length; i++) if ((labels[i] as number) >= 0) labelled.push(i);
  const split = splitTrainTest(
    labelled.length,
    options.testFraction ?? 0.2,
    seed,
    labelled.map((i) => labels[i] as number),
  );
  const trainIdx = Array.from(split.train, (k) => labelled[k] as number);
  const testIdx = Array.from(split.test, (k) => labelled[k] as number);
  const spec = fitPipeline(
    withClasses,
    trainIdx.map((i) => rows[i] as Record<string, unknown>),
  );
  const pipeline = compilePipeline(spec);
  const encode = (idx: number[]) => {
    const t = pipeline.transformRows(idx.map((i) => rows[i] as Record<string, unknown>));
    return {
      features: t.features,
      y: Int32Array.from(t.rows, (r) => labels[idx[r] as number] as number),
      kept: t.rows.length,
    };
  };
  const train = encode(trainIdx);
  const test = encode(testIdx);
  const weights = trainMlp(train.features, pipeline.width, train.y, classes.length, { seed, ...options.mlp });
  const testAccuracy = accuracy(predictMlp(weights, test.features, pipeline.width), test.y, classes.length);
  const trainAccuracy = accuracy(predictMlp(weights, train.features, pipeline.width), train.y, classes.length);

  const modelDir = path.join(options.modelsDir, spec.model, "1");
  await mkdir(modelDir, { recursive: true });
  const modelPath = path.join(modelDir, "model.onnx");
  await writeFile(modelPath, mlpToOnnx(weights, { inputName: spec.input, labels: classes }));
  await writeFile(
    path.join(options.modelsDir, spec.model, "config.json"),
    `${JSON.stringify({ name: spec.model, labels: classes, maxBatchSize: 256, maxQueueDelayMs: 0 }, null, 2)}\n`,
  );
  await mkdir(options.pipelinesDir, { recursive: true });
  const specPath = path.join(options.pipelinesDir, `${spec.name}.json`);
  await writeFile(specPath, `${JSON.stringify(spec, null, 2)}\n`);
  return {
    spec,
    specPath,
    modelPath,
    trainRows: train.kept,
    testRows: test.kept,
    skipped: rows.length - train.kept - test.kept,
    testAccuracy,
    trainAccuracy,
    classes,
    testRecordIndices: testIdx,
    seconds: (performance.now() - started) / 1000,
  };
}
