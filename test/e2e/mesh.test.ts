import http from "node:http";
import { create, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsToColumns } from "../../libs/batch/index.js";
import { Health } from "../../libs/gen/grpc/health/v1/health_pb.js";
import { BalancerService } from "../../libs/gen/sluice/v1/balancer_pb.js";
import { InferenceService } from "../../libs/gen/sluice/v1/inference_pb.js";
import { IngestService, type StreamRequest, StreamRequestSchema } from "../../libs/gen/sluice/v1/ingest_pb.js";
import { PreprocessService } from "../../libs/gen/sluice/v1/preprocess_pb.js";
import type { Result } from "../../libs/gen/sluice/v1/records_pb.js";
import { StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import type { Mesh } from "../../libs/mesh/index.js";
import { readFloat32 } from "../../libs/tensor/index.js";
import { connectTo } from "../../libs/transport/index.js";
import { penguinRows, referencePredict, startPenguinMesh } from "../helpers/mesh.js";

/** A grpc-js client for one unary method, encoding with protobuf-es: no .proto files needed. */
function grpcJsUnary<I, O>(address: string, service: DescService, method: DescMethod, req: I): Promise<O> {
  const path = `/${service.typeName}/${method.name}`;
  const Client = grpc.makeGenericClientConstructor(
    {
      [method.localName]: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: I) => Buffer.from(toBinary(method.input, m as never)),
        requestDeserialize: (b: Buffer) => fromBinary(method.input, b) as I,
        responseSerialize: (m: O) => Buffer.from(toBinary(method.output, m as never)),
        responseDeserialize: (b: Buffer) => fromBinary(method.output, b) as O,
      },
    },
    service.typeName,
  );
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Promise<O>((resolve, reject) => {
    (client as unknown as Record<string, (r: I, cb: (e: Error | null, o: O) => void) => void>)[method.localName]?.(
      req,
      (e, o) => {
        client.close();
        if (e) reject(e);
        else resolve(o);
      },
    );
  });
}

function record(id: string, fields: Record<string, unknown>) {
  return { $typeName: "sluice.v1.Record" as const, id, fields: fields as never };
}

async function streamAll(
  mesh: Mesh,
  rows: Array<Record<string, unknown>>,
  perMessage = 50,
): Promise<Map<string, Result>> {
  const client = connectTo(IngestService, mesh.address("ingest"));
  async function* requests(): AsyncIterable<StreamRequest> {
    for (let i = 0; i < rows.length; i += perMessage) {
      yield create((await import("../../libs/gen/sluice/v1/ingest_pb.js")).StreamRequestSchema, {
        records: rows.slice(i, i + perMessage).map((r, k) => record(String(i + k), r)),
      });
    }
  }
  const results = new Map<string, Result>();
  for await (const res of client.stream(requests())) {
    for (const r of res.results) {
      expect(results.has(r.id), `record ${r.id} answered twice`).toBe(false);
      results.set(r.id, r);
    }
  }
  return results;
}

describe("the mesh, five services in separate processes", () => {
  let mesh: Mesh;
  let rows: Array<Record<string, unknown>>;

  beforeAll(async () => {
    mesh = await startPenguinMesh({ inference: 2 });
    rows = await penguinRows();
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  it("runs every service as its own process on its own port", () => {
    const names = mesh.services.map((s) => s.name).sort();
    expect(names).toEqual(["balancer", "inference-1", "inference-2", "ingest", "preprocess", "state"]);
    expect(new Set(mesh.services.map((s) => s.address)).size).toBe(6);
    expect(new Set(mesh.services.map((s) => s.process.pid)).size).toBe(6);
  });

  it("answers grpc.health.v1 and a real RPC on every service with a grpc-js client", async () => {
    for (const s of mesh.services) {
      const h = await grpcJsUnary<object, { status: number }>(
        s.address,
        Health,
        Health.method.check,
        create(Health.method.check.input, { service: "" }),
      );
      expect(h.status, s.name).toBe(1);
    }
    const models = await grpcJsUnary<object, { models: Array<{ name: string }> }>(
      mesh.address("inference-1"),
      InferenceService,
      InferenceService.method.listModels,
      create(InferenceService.method.listModels.input, {}),
    );
    expect(models.models.map((m) => m.name)).toEqual(["penguins-mlp"]);
    const nodes = await grpcJsUnary<object, { nodes: Array<{ id: string; status: string }> }>(
      mesh.address("balancer"),
      BalancerService,
      BalancerService.method.listNodes,
      create(BalancerService.method.listNodes.input, {}),
    );
    expect(nodes.nodes.map((n) => `${n.id}:${n.status}`).sort()).toEqual(["inference-1:up", "inference-2:up"]);
    const sub = await grpcJsUnary<object, { results: Result[] }>(
      mesh.address("ingest"),
      IngestService,
      IngestService.method.submit,
      create(IngestService.method.submit.input, { records: [record("g1", rows[0] as Record<string, unknown>)] }),
    );
    expect(sub.results[0]?.id).toBe("g1");
    expect(sub.results[0]?.outcome.case).toBe("outputs");
  });

  it("answers Connect and gRPC-Web clients on the same ports", async () => {
    for (const s of mesh.services) {
      for (const transport of [
        createConnectTransport({ baseUrl: `http://${s.address}`, httpVersion: "1.1" }),
        createConnectTransport({ baseUrl: `http://${s.address}`, httpVersion: "2" }),
        createGrpcWebTransport({ baseUrl: `http://${s.address}`, httpVersion: "1.1" }),
      ]) {
        const h = await createClient(Health, transport).check({ service: "" });
        expect(h.status, s.name).toBe(1);
      }
    }
    const state = createClient(
      StateService,
      createConnectTransport({ baseUrl: `http://${mesh.address("state")}`, httpVersion: "1.1" }),
    );
    const listed = await state.list({ bucket: "pipelines" });
    expect(listed.entries.map((e) => e.key)).toEqual(["penguins"]);
    const pre = createClient(
      PreprocessService,
      createGrpcWebTransport({ baseUrl: `http://${mesh.address("preprocess")}`, httpVersion: "2" }),
    );
    expect(typeof pre.process).toBe("function");
  });

  it("takes plain JSON over HTTP/1.1 on ingest's Submit, the way curl sends it", async () => {
    const body = JSON.stringify({
      records: [
        { id: "curl-1", fields: rows[0] },
        { id: "curl-2", fields: { Island: "Dream" } },
      ],
    });
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const [host, port] = mesh.address("ingest").split(":");
      const req = http.request(
        {
          host,
          port: Number(port),
          method: "POST",
          path: "/sluice.v1.IngestService/Submit",
          headers: { "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c) => (text += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(status).toBe(200);
    const json = JSON.parse(text) as {
      results: Array<{ id: string; outputs?: { label: string }; error?: { code: string } }>;
    };
    expect(json.results.map((r) => r.id)).toEqual(["curl-1", "curl-2"]);
    expect(json.results[0]?.outputs?.label).toBe(rows[0]?.Species);
    expect(json.results[1]?.outputs?.label).toMatch(/^(Adelie|Chinstrap|Gentoo)$/);
  });

  it("gives every record exactly one result, equal to the same pipeline and model run in one process", async () => {
    const results = await streamAll(mesh, rows);
    expect(results.size).toBe(rows.length);
    const expected = await referencePredict(rows);
    let right = 0;
    rows.forEach((row, i) => {
      const r = results.get(String(i));
      const exp = expected[i];
      if (exp === undefined) {
        expect(r?.outcome.case, `record ${i}`).toBe("error");
        return;
      }
      expect(r?.outcome.case, `record ${i}`).toBe("outputs");
      const outputs = (r?.outcome.value ?? {}) as { probabilities: number[]; label: string };
      expect(outputs.probabilities.length).toBe(exp.length);
      outputs.probabilities.forEach((p, k) => {
        expect(Math.abs(p - (exp[k] as number))).toBeLessThan(1e-5);
      });
      if (outputs.label === row.Species) right++;
    });
    expect(right / rows.length).toBeGreaterThanOrEqual(0.95);
  });

  it("takes records in columns and answers in columns, with the same predictions", async () => {
    const client = connectTo(IngestService, mesh.address("ingest"));
    const expected = await referencePredict(rows);
    const bad = rowsToColumns([{ Island: "Dream" }]);
    (bad[0] as { kinds: Uint8Array }).kinds = new Uint8Array([2, 2, 2]); // three kinds for one record
    async function* requests(): AsyncIterable<StreamRequest> {
      for (let i = 0; i < rows.length; i += 100) {
        const slice = rows.slice(i, i + 100);
        yield create(StreamRequestSchema, {
          columns: { ids: slice.map((_, k) => `c${i + k}`), columns: rowsToColumns(slice) },
        });
      }
      yield create(StreamRequestSchema, { columns: { ids: ["malformed"], columns: bad } });
    }
    const got = new Map<string, number[]>();
    const errors = new Map<string, string>();
    for await (const res of client.stream(requests())) {
      expect(res.results).toEqual([]);
      const c = res.columns;
      if (c === undefined) continue;
      const probs = c.outputs.find((o) => o.name === "probabilities");
      const decoded = probs ? readFloat32(probs) : undefined;
      c.ids.forEach((id, row) => {
        got.set(id, Array.from(decoded?.data.subarray(row * decoded.cols, (row + 1) * decoded.cols) ?? []));
      });
      for (const e of c.errors) errors.set(e.id, e.outcome.case === "error" ? (e.outcome.value.message ?? "") : "");
    }
    expect(got.size + errors.size).toBe(rows.length + 1);
    expect(errors.get("malformed")).toContain("malformed columns");
    rows.forEach((_, i) => {
      const exp = expected[i];
      const p = got.get(`c${i}`);
      if (exp === undefined) {
        expect(errors.has(`c${i}`)).toBe(true);
        return;
      }
      expect(p?.length).toBe(exp.length);
      p?.forEach((v, k) => {
        expect(Math.abs(v - (exp[k] as number))).toBeLessThan(1e-5);
      });
    });
  });

  it("negotiates gzip with callers that ask for it, on a stream both ways", async () => {
    let compressedResponses = 0;
    const transport = createGrpcTransport({
      baseUrl: `http://${mesh.address("ingest")}`,
      sendCompression: compressionGzip,
      acceptCompression: [compressionGzip],
      compressMinBytes: 0,
      interceptors: [
        (next) => async (req) => {
          const res = await next(req);
          if (res.header.get("grpc-encoding") === "gzip") compressedResponses++;
          return res;
        },
      ],
    });
    const client = createClient(IngestService, transport);
    async function* requests(): AsyncIterable<StreamRequest> {
      for (let i = 0; i < rows.length; i += 50) {
        yield create(StreamRequestSchema, {
          records: rows.slice(i, i + 50).map((r, k) => record(`z${i + k}`, r)),
        });
      }
    }
    let answered = 0;
    for await (const res of client.stream(requests())) answered += res.results.length;
    expect(answered).toBe(rows.length);
    expect(compressedResponses).toBe(1);
  });

  it("spreads batches over both inference nodes", async () => {
    const many = Array.from({ length: 20 }, () => rows).flat();
    await streamAll(mesh, many, 20);
    const nodes = await connectTo(BalancerService, mesh.address("balancer")).listNodes({});
    for (const n of nodes.nodes) expect(n.batchesRouted, n.id).toBeGreaterThan(0n);
  });
});

describe("failover between inference nodes", () => {
  let mesh: Mesh;
  let rows: Array<Record<string, unknown>>;

  beforeAll(async () => {
    mesh = await startPenguinMesh({ inference: 2 });
    rows = await penguinRows();
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  it("loses no record when an inference node is killed mid-stream", async () => {
    const many = Array.from({ length: 60 }, () => rows).flat(); // 20,640 records
    const client = connectTo(IngestService, mesh.address("ingest"));
    const victim = mesh.services.find((s) => s.name === "inference-1");
    let sent = 0;
    async function* requests(): AsyncIterable<StreamRequest> {
      for (let i = 0; i < many.length; i += 100) {
        if (sent >= many.length / 3 && victim?.process.exitCode === null && victim.process.signalCode === null) {
          victim.process.kill("SIGKILL");
        }
        sent += 100;
        yield {
          $typeName: "sluice.v1.StreamRequest",
          pipeline: "",
          records: many.slice(i, i + 100).map((r, k) => record(String(i + k), r)),
        };
        await new Promise((r) => setImmediate(r));
      }
    }
    const seen = new Set<string>();
    let predictions = 0;
    for await (const res of client.stream(requests())) {
      for (const r of res.results) {
        expect(seen.has(r.id)).toBe(false);
        seen.add(r.id);
        if (r.outcome.case === "outputs") predictions++;
      }
    }
    expect(victim?.process.signalCode).toBe("SIGKILL");
    expect(seen.size).toBe(many.length);
    // Every record still got a prediction from the surviving node.
    expect(predictions).toBe(many.length);
  });

  it("sends no traffic to a registered node that is down, and uses it again once it is back", async () => {
    const state = connectTo(StateService, mesh.address("state"));
    // A node that registered and died before anyone could reach it.
    await state.put({
      bucket: "nodes",
      key: "ghost",
      value: JSON.stringify({ id: "ghost", address: "127.0.0.1:9", models: ["penguins-mlp"], heartbeatMs: Date.now() }),
    });
    const results = await streamAll(mesh, rows);
    expect([...results.values()].filter((r) => r.outcome.case === "outputs").length).toBe(rows.length);
    await state.delete({ bucket: "nodes", key: "ghost" });
    const back = await mesh.restart("inference-1");
    expect(back.address).toMatch(/:\d+$/);
    await new Promise((r) => setTimeout(r, 1_000));
    const again = await streamAll(mesh, Array.from({ length: 10 }, () => rows).flat(), 20);
    expect(again.size).toBe(rows.length * 10);
    const nodes = await connectTo(BalancerService, mesh.address("balancer")).listNodes({});
    const n1 = nodes.nodes.find((n) => n.id === "inference-1");
    expect(n1?.status).toBe("up");
    expect(n1?.address).toBe(back.address);
  });
});
