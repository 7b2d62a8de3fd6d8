import { create } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import {
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { type RecordTrace, RecordTraceSchema } from "../gen/sluice/v1/batch_pb.js";

/** A started telemetry SDK; `shutdown` flushes and is idempotent. */
export interface Telemetry {
  readonly tracer: Tracer;
  /** True when spans are exported somewhere (an OTLP endpoint is configured). */
  readonly exporting: boolean;
  shutdown(): Promise<void>;
}

/**
 * Starts one OpenTelemetry NodeSDK for a service. Spans are exported over OTLP when the
 * standard `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variable
 * is set (protocol from `OTEL_EXPORTER_OTLP_PROTOCOL`, sampler from `OTEL_TRACES_SAMPLER`);
 * otherwise nothing is exported and spans cost next to nothing.
 */
export function startTelemetry(serviceName: string): Telemetry {
  const exporting = otlpConfigured();
  process.env.OTEL_SERVICE_NAME ??= `sluice-${serviceName}`;
  // Sluice records traces only: without these the SDK would also set up OTLP metric and log
  // exporters aimed at localhost:4318, endpoint or not.
  process.env.OTEL_METRICS_EXPORTER ??= "none";
  process.env.OTEL_LOGS_EXPORTER ??= "none";
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME,
    // Without an endpoint, register the tracer and propagators but export nothing.
    ...(exporting ? {} : { spanProcessors: [] }),
    instrumentations: [],
  });
  sdk.start();
  let down: Promise<void> | undefined;
  return {
    tracer: trace.getTracer("sluice", "0.1.0"),
    exporting,
    shutdown() {
      down ??= sdk.shutdown().catch(() => undefined);
      return down;
    },
  };
}

/** Whether the standard OTEL variables ask for spans to be exported over OTLP. */
export function otlpConfigured(): boolean {
  return (
    (process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? "") !== "" &&
    process.env.OTEL_TRACES_EXPORTER !== "none" &&
    process.env.OTEL_SDK_DISABLED !== "true"
  );
}

/** The tracer every Sluice library uses; a no-op until a service starts telemetry. */
export function sluiceTracer(): Tracer {
  return trace.getTracer("sluice", "0.1.0");
}

/**
 * Starts one span per sampled record of a batch, each a child of the context the record
 * carries, and returns the spans with the records' new trace context for the next hop.
 */
export function startRecordSpans(
  name: string,
  traces: readonly RecordTrace[],
  attributes: Record<string, string | number> = {},
): { spans: Span[]; next: RecordTrace[] } {
  const tracer = sluiceTracer();
  const spans: Span[] = [];
  const next: RecordTrace[] = [];
  for (const t of traces) {
    const parent = propagation.extract(context.active(), { traceparent: t.traceparent, tracestate: t.tracestate });
    const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
    spans.push(span);
    next.push(recordTraceOf(span, t.index));
  }
  return { spans, next };
}

/** The W3C trace context of `span` as a batch's per-record trace entry. */
export function recordTraceOf(span: Span, index: number): RecordTrace {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return create(RecordTraceSchema, {
    index,
    traceparent: carrier.traceparent ?? "",
    tracestate: carrier.tracestate ?? "",
  });
}

/** Ends every span. */
export function endSpans(spans: readonly Span[]): void {
  for (const s of spans) s.end();
}

/**
 * Client side: puts the active W3C trace context into every call's headers (gRPC metadata),
 * so the callee's spans are children of the caller's.
 */
export const clientTraceInterceptor: Interceptor = (next) => async (req) => {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  for (const [k, v] of Object.entries(carrier)) req.header.set(k, v);
  return next(req);
};

/**
 * Server side: a span per unary call, child of the trace context in the call's headers, active
 * while the handler runs (so what the handler writes, e.g. NATS messages, carries it on).
 * Streams keep their own per-record spans inside batches.
 */
export const serverTraceInterceptor: Interceptor = (next) => async (req) => {
  if (req.stream) return next(req);
  const carrier: Record<string, string> = {};
  req.header.forEach((v, k) => {
    carrier[k] = v;
  });
  const parent = propagation.extract(context.active(), carrier);
  const span = sluiceTracer().startSpan(
    `${req.service.typeName}/${req.method.name}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": "grpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => next(req));
  } catch (e) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
    throw e;
  } finally {
    span.end();
  }
};

/** Links to the records a batch carries trace context for (a batch span serves many traces). */
export function linksOf(traces: Iterable<RecordTrace>): Link[] {
  const links: Link[] = [];
  for (const t of traces) {
    const ctx = trace.getSpanContext(
      propagation.extract(ROOT_CONTEXT, { traceparent: t.traceparent, tracestate: t.tracestate }),
    );
    if (ctx !== undefined) links.push({ context: ctx });
  }
  return links;
}
