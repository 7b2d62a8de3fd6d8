import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../gen/grpc/health/v1/health_pb.js";

/** Serving status of a server as health checks report it. */
export type HealthStatus = "SERVING" | "NOT_SERVING";

/**
 * Registers grpc.health.v1.Health for the server ("") and each named service.
 * Returns a setter that changes the status of all of them at once; watchers see each change.
 */
export function registerHealth(router: ConnectRouter, services: string[]): (status: HealthStatus) => void {
  let status: HealthStatus = "SERVING";
  const listeners = new Set<() => void>();
  const known = new Set(["", ...services, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]);
  const response = () =>
    create(HealthCheckResponseSchema, {
      status:
        status === "SERVING"
          ? HealthCheckResponse_ServingStatus.SERVING
          : HealthCheckResponse_ServingStatus.NOT_SERVING,
    });
  router.service(Health, {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return response();
    },
    list() {
      return { statuses: Object.fromEntries([...known].map((s) => [s, response()])) };
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        yield create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN });
        return;
      }
      let wake: (() => void) | undefined;
      const onChange = () => wake?.();
      listeners.add(onChange);
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        let last: HealthStatus | undefined;
        while (!ctx.signal.aborted) {
          if (status !== last) {
            last = status;
            yield response();
          }
          // An abort or change while the caller held the last response must not be lost.
          if (ctx.signal.aborted) break;
          if (status !== last) continue;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        listeners.delete(onChange);
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  });
  return (next) => {
    status = next;
    for (const l of listeners) l();
  };
}
