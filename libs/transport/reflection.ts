import { create, type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.js";

/**
 * Registers grpc.reflection.v1.ServerReflection, so grpcurl and other tools can call the
 * server without local .proto files. Answers list_services, file_by_filename and
 * file_containing_symbol with the file and its transitive imports.
 */
export function registerReflection(router: ConnectRouter, services: string[], files: DescFile[]): void {
  const byName = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const add = (f: DescFile) => {
    if (byName.has(`${f.name}.proto`)) return;
    byName.set(`${f.name}.proto`, f);
    for (const d of f.dependencies) add(d);
    for (const m of f.messages) addMessage(m.typeName, m.nestedMessages, m.nestedEnums, f);
    for (const e of f.enums) bySymbol.set(e.typeName, f);
    for (const s of f.services) {
      bySymbol.set(s.typeName, f);
      for (const m of s.methods) bySymbol.set(`${s.typeName}.${m.name}`, f);
    }
  };
  const addMessage = (typeName: string, nested: DescFile["messages"], enums: DescFile["enums"], f: DescFile) => {
    bySymbol.set(typeName, f);
    for (const e of enums) bySymbol.set(e.typeName, f);
    for (const m of nested) addMessage(m.typeName, m.nestedMessages, m.nestedEnums, f);
  };
  for (const f of files) add(f);

  const withDeps = (f: DescFile): Uint8Array[] => {
    const out: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (x: DescFile) => {
      if (seen.has(x.name)) return;
      seen.add(x.name);
      out.push(x);
      for (const d of x.dependencies) visit(d);
    };
    visit(f);
    return out.map((x) => toBinary(FileDescriptorProtoSchema, x.proto));
  };

  const answer = (req: ServerReflectionRequest): ServerReflectionResponse => {
    const base = { validHost: req.host, originalRequest: req };
    const notFound = (what: string) =>
      create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: "errorResponse", value: { errorCode: 5, errorMessage: `${what} not found` } },
      });
    const files = (f: DescFile) =>
      create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDeps(f) } },
      });
    const m = req.messageRequest;
    switch (m.case) {
      case "listServices":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } },
        });
      case "fileByFilename": {
        const f = byName.get(m.value);
        return f ? files(f) : notFound(`file ${m.value}`);
      }
      case "fileContainingSymbol": {
        const f = bySymbol.get(m.value);
        return f ? files(f) : notFound(`symbol ${m.value}`);
      }
      case "allExtensionNumbersOfType":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: m.value, extensionNumber: [] },
          },
        });
      default:
        return notFound("extension");
    }
  };

  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield answer(req);
    },
  });
}
