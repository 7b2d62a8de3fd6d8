import { execFileSync } from "node:child_process";
import http from "node:http";
import net from "node:net";
import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stateRoutes } from "../../services/state/handlers.js";
import {
  Health,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  GetRequestSchema,
  type GetResponse,
  ListRequestSchema,
  PutRequestSchema,
  type PutResponse,
  StateService,
} from "../gen/sluice/v1/state_pb.js";
import { createMemoryStore, type StateStore } from "../state/index.js";
import { type RunningServer, startServer } from "./server.js";

/**
 * A grpc-js service definition built from protobuf-es descriptors: no .proto loading, the
 * same bytes any grpc client sends.
 */
function grpcDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<MessageShape<DescMessage>, MessageShape<DescMessage>>> = {};
  for (const m of service.methods) {
    const ser = (schema: DescMessage) => (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(schema, msg));
    const de = (schema: DescMessage) => (buf: Buffer) => fromBinary(schema, buf);
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: ser(m.input),
      requestDeserialize: de(m.input),
      responseSerialize: ser(m.output),
      responseDeserialize: de(m.output),
      originalName: m.name,
    };
  }
  return def;
}

// biome-ignore lint/suspicious/noExplicitAny: grpc-js generic clients are untyped by design.
type GenericClient = grpc.Client & Record<string, any>;

function grpcClient(service: DescService, address: string): GenericClient {
  const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(service), service.name);
  return new Ctor(address, grpc.credentials.createInsecure()) as GenericClient;
}

function unary<Res>(client: GenericClient, method: string, req: unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + 5_000 }, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** One reflection request on a fresh bidi stream; resolves with the single answer. */
function reflect(client: GenericClient, req: ServerReflectionRequest): Promise<ServerReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call: grpc.ClientDuplexStream<ServerReflectionRequest, ServerReflectionResponse> =
      client.serverReflectionInfo({ deadline: Date.now() + 5_000 });
    const answers: ServerReflectionResponse[] = [];
    call.on("data", (r: ServerReflectionResponse) => answers.push(r));
    call.on("error", reject);
    call.on("end", () =>
      answers.length === 1
        ? resolve(answers[0] as ServerReflectionResponse)
        : reject(new Error(`${answers.length} answers`)),
    );
    call.write(req);
    call.end();
  });
}

/** Plain HTTP/1.1 POST with the headers curl sends for `curl -d '<json>' -H 'Content-Type: application/json'`. */
function curlPost(
  port: number,
  path: string,
  body: string,
  agent?: http.Agent,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; httpVersion: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent: agent ?? false,
        headers: {
          "User-Agent": "curl/8.5.0",
          Accept: "*/*",
          "Content-Type": "application/json",
          "Content-Length": Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, httpVersion: res.httpVersion }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Resolves true when a TCP connection to the port is refused (nothing listens). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

/** The memory store, counting the watches that are open on it (to see that the server ends them). */
function countingStore(): StateStore & { openWatches(): number } {
  const store = createMemoryStore();
  let open = 0;
  return {
    ...store,
    watch(bucket, prefix, signal, skipCurrent) {
      const inner = store.watch(bucket, prefix, signal, skipCurrent);
      return (async function* () {
        open++;
        try {
          yield* inner;
        } finally {
          open--;
        }
      })();
    },
    openWatches: () => open,
  };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)),
  ]);
}

describe("startServer serving StateService", () => {
  let server: RunningServer;
  let baseUrl: string;
  const grpcClients: GenericClient[] = [];
  const client = (service: DescService) => {
    const c = grpcClient(service, server.address);
    grpcClients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startServer({
      name: "state",
      services: [StateService],
      routes: stateRoutes(createMemoryStore()),
      port: 0,
    });
    baseUrl = `http://${server.address}`;
  });

  afterAll(async () => {
    for (const c of grpcClients) c.close();
    await within(server.close(1_000), 5_000, "close");
    // The helper's rule: nothing may listen or stay open after the test.
    expect(await refused(server.port)).toBe(true);
  });

  it("listens on a free port and reports it as host:port", () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.address).toBe(`127.0.0.1:${server.port}`);
  });

  it("(a) grpc-js generic client: Put then Get", async () => {
    const state = client(StateService);
    const put = await unary<PutResponse>(
      state,
      "put",
      create(PutRequestSchema, { bucket: "settings", key: "grpc-js", value: '{"via":"grpc-js"}' }),
    );
    expect(put.entry?.revision).toBeGreaterThan(0n);
    const got = await unary<GetResponse>(
      state,
      "get",
      create(GetRequestSchema, { bucket: "settings", key: "grpc-js" }),
    );
    expect(got.entry).toMatchObject({ bucket: "settings", key: "grpc-js", value: '{"via":"grpc-js"}', present: true });
    expect(got.entry?.revision).toBe(put.entry?.revision);
    // An error keeps its gRPC status code across grpc-js.
    const missing = await unary(state, "get", create(GetRequestSchema, { bucket: "settings", key: "absent" })).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  const transports: Array<[string, () => Transport]> = [
    ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect over HTTP/2", () => createConnectTransport({ baseUrl, httpVersion: "2" })],
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["gRPC-Web over HTTP/2", () => createGrpcWebTransport({ baseUrl, httpVersion: "2" })],
    ["gRPC (connect-node) over HTTP/2", () => createGrpcTransport({ baseUrl })],
  ];
  for (const [name, makeTransport] of transports) {
    it(`(b) ${name}: Put, Get, a server stream and an error code`, async () => {
      const state = createClient(StateService, makeTransport());
      const key = name.replace(/[^A-Za-z0-9]+/g, "-");
      const put = await state.put({ bucket: "protocols", key, value: JSON.stringify({ name }) });
      const got = await state.get({ bucket: "protocols", key });
      expect(got.entry?.value).toBe(JSON.stringify({ name }));
      expect(got.entry?.revision).toBe(put.entry?.revision);
      // A server stream: the snapshot of this key, then the marker.
      const ac = new AbortController();
      const seen: string[] = [];
      for await (const ev of state.watch({ bucket: "protocols", prefix: key }, { signal: ac.signal })) {
        if (ev.currentDone) break;
        seen.push(ev.entry?.key ?? "");
      }
      ac.abort();
      expect(seen).toEqual([key]);
      const err = await state.get({ bucket: "protocols", key: "absent" }).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.NotFound);
    });
  }

  it("(c) plain JSON over HTTP/1.1, as curl -d sends it", async () => {
    const res = await curlPost(
      server.port,
      "/sluice.v1.StateService/Put",
      JSON.stringify({ bucket: "settings", key: "curl", value: '{"via":"curl"}' }),
    );
    expect(res.httpVersion).toBe("1.1");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    const put = JSON.parse(res.body) as { entry: { bucket: string; key: string; value: string; revision: string } };
    expect(put.entry).toMatchObject({ bucket: "settings", key: "curl", value: '{"via":"curl"}', present: true });
    // uint64 is a decimal string in the protobuf JSON mapping.
    expect(put.entry.revision).toMatch(/^[1-9][0-9]*$/);

    const get = await curlPost(server.port, "/sluice.v1.StateService/Get", '{"bucket":"settings","key":"curl"}');
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body).entry.revision).toBe(put.entry.revision);

    // The Connect error shape a curl user sees.
    const bad = await curlPost(
      server.port,
      "/sluice.v1.StateService/Put",
      JSON.stringify({ bucket: "settings", key: "curl", value: "not json" }),
    );
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: "invalid_argument" });
    const missing = await curlPost(server.port, "/sluice.v1.StateService/Get", '{"bucket":"settings","key":"nope"}');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).code).toBe("not_found");
  });

  it("(d) grpc.health.v1 Check via grpc-js: the server is SERVING, an unknown service NOT_FOUND", async () => {
    const health = client(Health);
    const all = await unary<HealthCheckResponse>(health, "check", create(HealthCheckRequestSchema, { service: "" }));
    expect(all.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const named = await unary<HealthCheckResponse>(
      health,
      "check",
      create(HealthCheckRequestSchema, { service: "sluice.v1.StateService" }),
    );
    expect(named.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const unknown = await unary(
      health,
      "check",
      create(HealthCheckRequestSchema, { service: "no.such.Service" }),
    ).catch((e: grpc.ServiceError) => e);
    expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it("(e) reflection via grpc-js: list_services and file_containing_symbol", async () => {
    const reflection = client(ServerReflection);
    const list = await reflect(
      reflection,
      create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
    );
    expect(list.messageResponse.case).toBe("listServicesResponse");
    const names =
      list.messageResponse.case === "listServicesResponse" ? list.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(
      expect.arrayContaining([
        "sluice.v1.StateService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
      ]),
    );

    const file = await reflect(
      reflection,
      create(ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "sluice.v1.StateService" },
      }),
    );
    expect(file.messageResponse.case).toBe("fileDescriptorResponse");
    const protos =
      file.messageResponse.case === "fileDescriptorResponse"
        ? file.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b))
        : [];
    expect(protos.length).toBeGreaterThan(0);
    const state = protos.find((p) => p.name === "sluice/v1/state.proto");
    expect(state, `files: ${protos.map((p) => p.name).join(", ")}`).toBeDefined();
    expect(state?.package).toBe("sluice.v1");
    expect(state?.service.map((s) => s.name)).toEqual(["StateService"]);
    expect(state?.service[0]?.method.map((m) => m.name)).toEqual(
      expect.arrayContaining(["Get", "Put", "Watch", "Transition"]),
    );

    // A method is a symbol too, and the file is found by its name.
    const byMethod = await reflect(
      reflection,
      create(ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "sluice.v1.StateService.Put" },
      }),
    );
    expect(byMethod.messageResponse.case).toBe("fileDescriptorResponse");
    const byName = await reflect(
      reflection,
      create(ServerReflectionRequestSchema, {
        messageRequest: { case: "fileByFilename", value: "sluice/v1/state.proto" },
      }),
    );
    expect(byName.messageResponse.case).toBe("fileDescriptorResponse");
    const unknown = await reflect(
      reflection,
      create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "no.Such" } }),
    );
    expect(unknown.messageResponse.case).toBe("errorResponse");
  });

  // (f) grpcurl is optional: run it only where it is installed, never install it.
  const grpcurl = (() => {
    try {
      execFileSync("grpcurl", ["-version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
  it(`(f) grpcurl ${grpcurl ? "lists and calls through reflection" : "is not installed: nothing to check"}`, () => {
    if (!grpcurl) return;
    const list = execFileSync("grpcurl", ["-plaintext", server.address, "list"], { encoding: "utf8" });
    expect(list).toContain("sluice.v1.StateService");
    const out = execFileSync(
      "grpcurl",
      [
        "-plaintext",
        "-d",
        '{"bucket":"settings","key":"grpcurl","value":"1"}',
        server.address,
        "sluice.v1.StateService/Put",
      ],
      { encoding: "utf8" },
    );
    expect(JSON.parse(out).entry.key).toBe("grpcurl");
  });
});

describe("RunningServer.close", () => {
  it("(g) ends an open Watch stream, closes every connection and stops listening", async () => {
    const store = countingStore();
    const server = await startServer({ name: "state", services: [StateService], routes: stateRoutes(store), port: 0 });
    const baseUrl = `http://${server.address}`;
    const h2 = createClient(StateService, createConnectTransport({ baseUrl, httpVersion: "2" }));
    const h1 = createClient(StateService, createConnectTransport({ baseUrl, httpVersion: "1.1" }));
    const g = grpcClient(StateService, server.address);
    try {
      // An open Watch over HTTP/2 that has seen its snapshot and a change.
      const seen: string[] = [];
      let watchError: unknown;
      const events = h2.watch({ bucket: "settings" });
      const watching = (async () => {
        try {
          for await (const ev of events) seen.push(ev.currentDone ? "<currentDone>" : (ev.entry?.key ?? ""));
        } catch (e) {
          watchError = e;
        }
      })();
      await h1.put({ bucket: "settings", key: "a", value: "1" });
      const until = Date.now() + 5_000;
      while (seen.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(seen).toEqual(["<currentDone>", "a"]);
      expect(store.openWatches()).toBe(1);

      // A grpc-js channel and an HTTP/1.1 keep-alive connection left idle.
      await unary(g, "list", create(ListRequestSchema, { bucket: "settings" }));
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      await curlPost(server.port, "/sluice.v1.StateService/List", '{"bucket":"settings"}', agent);
      const idle = Object.values(agent.freeSockets).flat()[0];
      expect(idle, "keep-alive socket left idle").toBeDefined();
      const idleClosed = new Promise<void>((resolve) => idle?.once("close", () => resolve()));

      const started = Date.now();
      await within(server.close(300), 5_000, "close");
      expect(Date.now() - started).toBeLessThan(4_000);

      // The Watch stream ended (with an error or not, but it ended) and the handler let go of the store.
      await within(watching, 3_000, "the watch stream to end");
      expect(seen).toEqual(["<currentDone>", "a"]);
      if (watchError !== undefined) expect(watchError).toBeInstanceOf(ConnectError);
      const until2 = Date.now() + 3_000;
      while (store.openWatches() > 0 && Date.now() < until2) await new Promise((r) => setTimeout(r, 10));
      expect(store.openWatches(), "watches still open on the store after close").toBe(0);

      await within(idleClosed, 3_000, "the idle HTTP/1.1 connection to close");
      agent.destroy();
      expect(await refused(server.port)).toBe(true);
      // Every protocol now fails to reach it.
      const after = await h1.get({ bucket: "settings", key: "a" }).catch((e: unknown) => ConnectError.from(e));
      expect((after as ConnectError).code).toBe(Code.Unavailable);
      // close() is idempotent.
      await within(server.close(), 1_000, "a second close");
    } finally {
      g.close();
      await server.close(0);
    }
  });

  it("(g) with nothing open, close() resolves at once", async () => {
    const server = await startServer({
      name: "state",
      services: [StateService],
      routes: stateRoutes(createMemoryStore()),
    });
    const state = createClient(
      StateService,
      createConnectTransport({ baseUrl: `http://${server.address}`, httpVersion: "1.1" }),
    );
    await state.put({ bucket: "b", key: "k", value: "{}" });
    const started = Date.now();
    await within(server.close(), 3_000, "close");
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(await refused(server.port)).toBe(true);
  });
});
