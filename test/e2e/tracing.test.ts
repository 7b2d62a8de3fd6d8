import http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestService, type StreamRequest, StreamRequestSchema } from "../../libs/gen/sluice/v1/ingest_pb.js";
import type { Result } from "../../libs/gen/sluice/v1/records_pb.js";
import type { Mesh } from "../../libs/mesh/index.js";
import { connectTo } from "../../libs/transport/index.js";
import { penguinRows, startPenguinMesh } from "../helpers/mesh.js";

/** One span as OTLP/HTTP JSON carries it, with its resource's service.name. */
interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
  /** Span ids of the spans this one links to. */
  links: string[];
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpKeyValue {
  key: string;
  value?: OtlpValue;
}

function attrs(list: OtlpKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.stringValue ?? v.intValue ?? v.doubleValue ?? v.boolValue;
  }
  return out;
}

/** A small OTLP/HTTP receiver: collects spans POSTed as JSON to /v1/traces, answers 200 to anything. */
interface Receiver {
  url: string;
  spans: ReceivedSpan[];
  /** Requests per path, whatever their content type. */
  requests: Map<string, number>;
  /** Content types seen on /v1/traces. */
  contentTypes: Set<string>;
  close(): Promise<void>;
}

async function startReceiver(port = 0, host = "127.0.0.1"): Promise<Receiver> {
  const spans: ReceivedSpan[] = [];
  const requests = new Map<string, number>();
  const contentTypes = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0] as string;
      requests.set(path, (requests.get(path) ?? 0) + 1);
      if (req.method === "POST" && path === "/v1/traces") {
        const type = String(req.headers["content-type"] ?? "");
        contentTypes.add(type);
        if (type.includes("json")) {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
            resourceSpans?: Array<{
              resource?: { attributes?: OtlpKeyValue[] };
              scopeSpans?: Array<{
                spans?: Array<{
                  traceId: string;
                  spanId: string;
                  parentSpanId?: string;
                  name: string;
                  attributes?: OtlpKeyValue[];
                  links?: Array<{ traceId: string; spanId: string }>;
                }>;
              }>;
            }>;
          };
          for (const rs of body.resourceSpans ?? []) {
            const service = String(attrs(rs.resource?.attributes)["service.name"] ?? "");
            for (const ss of rs.scopeSpans ?? []) {
              for (const s of ss.spans ?? []) {
                spans.push({
                  service,
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId ?? "",
                  name: s.name,
                  attributes: attrs(s.attributes),
                  links: (s.links ?? []).map((l) => l.spanId),
                });
              }
            }
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    spans,
    requests,
    contentTypes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Streams `rows` through ingest as records `t0`, `t1`, ... and returns their results. */
async function streamRows(mesh: Mesh, rows: Array<Record<string, unknown>>): Promise<Map<string, Result>> {
  const client = connectTo(IngestService, mesh.address("ingest"));
  async function* requests(): AsyncIterable<StreamRequest> {
    yield create(StreamRequestSchema, {
      records: rows.map((r, i) => ({ $typeName: "sluice.v1.Record" as const, id: `t${i}`, fields: r as never })),
    });
  }
  const results = new Map<string, Result>();
  for await (const res of client.stream(requests())) for (const r of res.results) results.set(r.id, r);
  return results;
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

/** The full chain ingest → preprocess → balancer → inference of one record's trace, if it is there. */
function chainOf(spans: ReceivedSpan[], ingest: ReceivedSpan) {
  const inTrace = spans.filter((s) => s.traceId === ingest.traceId);
  const pre = inTrace.find((s) => s.name === "preprocess.transform" && s.parentSpanId === ingest.spanId);
  const bal = pre && inTrace.find((s) => s.name === "balancer.route" && s.parentSpanId === pre.spanId);
  const inf = bal && inTrace.find((s) => s.name === "inference.run" && s.parentSpanId === bal.spanId);
  return { inTrace, pre, bal, inf };
}

describe("a sampled record's trace, exported over OTLP/HTTP JSON by every service", () => {
  let receiver: Receiver;
  let mesh: Mesh;
  let rows: Array<Record<string, unknown>>;

  beforeAll(async () => {
    receiver = await startReceiver();
    // Records with every field present, so that each one reaches inference.
    rows = (await penguinRows())
      .filter((r) => Object.values(r).every((v) => v !== null && v !== undefined))
      .slice(0, 20);
    mesh = await startPenguinMesh({
      inference: 2,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_BSP_SCHEDULE_DELAY: "200",
        // Keep the receiver to traces: no periodic metrics or log exports in this test.
        OTEL_METRICS_EXPORTER: "none",
        OTEL_LOGS_EXPORTER: "none",
        SLUICE_TRACE_RATIO: "1",
      },
    });
  });
  afterAll(async () => {
    await mesh?.stop();
    await receiver?.close();
  });

  it("holds a span from ingest, preprocess, balancer and inference under one trace id, parent to child", async () => {
    expect(rows).toHaveLength(20);
    const results = await streamRows(mesh, rows);
    expect(results.size).toBe(20);
    for (const r of results.values()) expect(r.outcome.case, r.id).toBe("outputs");

    const ingestSpans = () => receiver.spans.filter((s) => s.name === "ingest.record");
    const complete = () => ingestSpans().filter((s) => chainOf(receiver.spans, s).inf !== undefined);
    // Every record is sampled (ratio 1): wait until every one of them has its full chain.
    await until(() => complete().length >= rows.length, 15_000);

    expect(receiver.contentTypes.size, "spans arrived at /v1/traces").toBeGreaterThan(0);
    for (const t of receiver.contentTypes) expect(t).toContain("application/json");

    const ids = ingestSpans().map((s) => s.attributes["sluice.record.id"]);
    expect(new Set(ids)).toEqual(new Set(rows.map((_, i) => `t${i}`)));

    const done = complete();
    expect(done.length, "records whose trace has the full chain").toBe(rows.length);
    for (const ingest of done) {
      const { inTrace, pre, bal, inf } = chainOf(receiver.spans, ingest);
      const id = String(ingest.attributes["sluice.record.id"]);
      expect(ingest.service, id).toBe("sluice-ingest");
      expect(pre?.service, id).toBe("sluice-preprocess");
      expect(bal?.service, id).toBe("sluice-balancer");
      expect(inf?.service, id).toMatch(/^sluice-inference-\d+$/);
      // One trace per record: the services it passed, each once.
      const services = new Set(inTrace.map((s) => s.service.replace(/-\d+$/, "")));
      expect([...services].sort(), id).toEqual(
        ["sluice-ingest", "sluice-inference", "sluice-preprocess", "sluice-balancer"].sort(),
      );
      expect(
        inTrace.filter((s) => s.name === "inference.run"),
        id,
      ).toHaveLength(1);
      expect(inf?.attributes["sluice.model"], id).toBe("penguins-mlp");
    }
    // Different records, different traces.
    expect(new Set(done.map((s) => s.traceId)).size).toBe(rows.length);
    // Each inference run has a batch span linked to the record spans it served: every record's
    // inference.run span is linked from one of them.
    const batchLinks = new Set(receiver.spans.filter((s) => s.name === "inference.batch").flatMap((s) => s.links));
    for (const ingest of done) {
      const { inf } = chainOf(receiver.spans, ingest);
      expect(batchLinks.has(inf?.spanId ?? "none"), String(ingest.attributes["sluice.record.id"])).toBe(true);
    }
  });
});

/** The standard OTLP/HTTP endpoint an SDK falls back to: http://localhost:4318, on both loopbacks. */
async function startDefaultReceivers(): Promise<Receiver[]> {
  const out: Receiver[] = [];
  for (const host of ["127.0.0.1", "::1"]) {
    try {
      out.push(await startReceiver(4318, host));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EADDRNOTAVAIL" && host === "::1") continue; // No IPv6 loopback here.
      await Promise.all(out.map((r) => r.close()));
      if (code === "EADDRINUSE") throw new Error("port 4318 (OTLP's default) is taken: this test needs it free");
      throw e;
    }
  }
  return out;
}

describe.each([
  { case: "no OTEL variables at all (the receiver on the default localhost:4318)", env: {}, defaultPort: true },
  {
    case: "an endpoint but OTEL_TRACES_EXPORTER=none",
    env: { OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
    defaultPort: false,
  },
])("the mesh with $case", ({ env, defaultPort }) => {
  let receivers: Receiver[] | undefined;
  let mesh: Mesh | undefined;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    // The services inherit this process's environment: keep any OTEL_* of the caller out.
    for (const k of Object.keys(process.env)) {
      if (k.startsWith("OTEL_")) {
        saved[k] = process.env[k];
        delete process.env[k];
      }
    }
    receivers = defaultPort ? await startDefaultReceivers() : [await startReceiver()];
    const endpoint = defaultPort ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: receivers[0]?.url as string };
    mesh = await startPenguinMesh({
      inference: 1,
      env: { ...env, ...endpoint, OTEL_BSP_SCHEDULE_DELAY: "200", SLUICE_TRACE_RATIO: "1" },
    });
  });
  afterAll(async () => {
    await mesh?.stop();
    await Promise.all((receivers ?? []).map((r) => r.close()));
    Object.assign(process.env, saved);
  });

  it("sends nothing, not even at shutdown", async () => {
    const m = mesh as Mesh;
    const rows = (await penguinRows()).slice(0, 10);
    const results = await streamRows(m, rows);
    expect(results.size).toBe(10);
    await new Promise((r) => setTimeout(r, 1_000));
    // A stop flushes whatever the SDK holds: stop first, then look.
    await m.stop();
    for (const r of receivers ?? []) {
      expect(r.spans).toEqual([]);
      expect(Object.fromEntries(r.requests)).toEqual({});
    }
  });
});
