import type { ConnectRouter } from "@connectrpc/connect";
import { BalancerService, type RouteResponse } from "../../libs/gen/sluice/v1/balancer_pb.js";
import { endSpans, startRecordSpans } from "../../libs/telemetry/index.js";
import { AsyncQueue } from "../../libs/transport/index.js";
import type { NodePool } from "./node-pool.js";

/** Registers the BalancerService handlers over `pool`. */
export function balancerRoutes(pool: NodePool): (router: ConnectRouter) => void {
  return (router) =>
    router.service(BalancerService, {
      async *route(requests, ctx) {
        const out = new AsyncQueue<RouteResponse>();
        let outstanding = 0;
        let inputDone = false;
        let cancelled = false;
        void (async () => {
          try {
            for await (const req of requests) {
              const batch = req.batch;
              if (batch === undefined) continue;
              outstanding++;
              const { spans, next } = startRecordSpans("balancer.route", batch.traces, { "sluice.model": batch.model });
              pool.route({ ...batch, traces: next }, (results) => {
                endSpans(spans);
                if (cancelled) return;
                out.push({ $typeName: "sluice.v1.RouteResponse", results });
                if (--outstanding === 0 && inputDone) out.close();
              });
            }
            inputDone = true;
            if (outstanding === 0) out.close();
          } catch (e) {
            out.fail(e);
          }
        })();
        ctx.signal.addEventListener("abort", () => {
          cancelled = true;
          out.close();
        });
        yield* out;
      },
      listNodes() {
        return { nodes: pool.loads() };
      },
    });
}
