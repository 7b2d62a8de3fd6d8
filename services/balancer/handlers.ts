import type { ConnectRouter } from "@connectrpc/connect";
import { BalancerService, type RouteRequest, type RouteResponse } from "../../libs/gen/sluice/v1/balancer_pb.js";
import { endSpans, startRecordSpans } from "../../libs/telemetry/index.js";
import { answerEach } from "../../libs/transport/index.js";
import type { NodePool } from "./node-pool.js";

/** Registers the BalancerService handlers over `pool`. */
export function balancerRoutes(pool: NodePool): (router: ConnectRouter) => void {
  return (router) =>
    router.service(BalancerService, {
      route(requests, ctx) {
        return answerEach<RouteRequest, RouteResponse>(requests, ctx.signal, (req, reply) => {
          const batch = req.batch;
          if (batch === undefined) {
            reply({ $typeName: "sluice.v1.RouteResponse" });
            return;
          }
          const { spans, next } = startRecordSpans("balancer.route", batch.traces, { "sluice.model": batch.model });
          pool.route({ ...batch, traces: next }, (results) => {
            endSpans(spans);
            reply({ $typeName: "sluice.v1.RouteResponse", results });
          });
        });
      },
      listNodes() {
        return { nodes: pool.loads() };
      },
    });
}
