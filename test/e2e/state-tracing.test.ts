import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateService } from "../../libs/gen/sluice/v1/state_pb.js";
import { createNatsStore, type NatsStore } from "../../libs/state/nats-store.js";
import { connectTo, type RunningServer, startServer } from "../../libs/transport/index.js";
import { stateRoutes } from "../../services/state/handlers.js";
import { type NatsServer, startNatsServer } from "../helpers/nats.js";

describe("trace context through state calls and NATS", () => {
  const exporter = new InMemorySpanExporter();
  let nats: NatsServer;
  let store: NatsStore;
  let server: RunningServer;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    nats = await startNatsServer({ jetstream: true });
    store = await createNatsStore({ servers: nats.url });
    server = await startServer({ name: "state", services: [StateService], routes: stateRoutes(store) });
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    await nats?.stop();
  });

  it("makes the state change's span a child of the caller's, and carries it in the NATS message", async () => {
    const headers: string[] = [];
    const sub = store.connection.subscribe("$KV.sluice_traced.>", {
      callback: (_e, msg) => headers.push(msg.headers?.get("traceparent") ?? ""),
    });
    await store.put("traced", "warm-up", "{}");
    headers.length = 0;
    const client = connectTo(StateService, server.address);
    const caller = trace.getTracer("test").startSpan("caller");
    await context.with(trace.setSpan(context.active(), caller), () =>
      client.put({ bucket: "traced", key: "k", value: '{"v":1}' }),
    );
    caller.end();
    await new Promise((r) => setTimeout(r, 200));
    sub.unsubscribe();
    const spans = exporter.getFinishedSpans();
    const serverSpan = spans.find((s) => s.name === "sluice.v1.StateService/Put");
    expect(serverSpan).toBeDefined();
    const callerCtx = caller.spanContext();
    expect(serverSpan?.spanContext().traceId).toBe(callerCtx.traceId);
    expect(serverSpan?.parentSpanContext?.spanId).toBe(callerCtx.spanId);
    // The KV write published on NATS carries the server span as its parent.
    expect(headers).toHaveLength(1);
    const [, traceId, parentId] = (headers[0] ?? "").split("-");
    expect(traceId).toBe(callerCtx.traceId);
    expect(parentId).toBe(serverSpan?.spanContext().spanId);
  });
});
