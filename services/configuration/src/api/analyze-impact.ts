import { EncodedResponse, NotFound } from "@rdm/grpc";
import {
  type AnalyzeImpactRequest,
  AnalyzeImpactResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type pg from "pg";
import { ImpactGraph } from "../store/impact-graph.js";
import { encodeImpactResponse } from "./impact-response.js";

/**
 * AnalyzeImpact over the in-memory graph (ImpactGraph), brought up to every commit visible at
 * the call, so the answer is the one the database would give, without a round trip per level.
 * The answer (by depth, then name as people read them, then id) is written straight to bytes.
 */
export function analyzeImpactHandler(
  pool: pg.Pool,
): (request: AnalyzeImpactRequest) => Promise<EncodedResponse<typeof AnalyzeImpactResponseSchema>> {
  const graph = new ImpactGraph(pool);
  return async (request) => {
    // One round trip a call: the refresh reads what changed, the root comes from the graph.
    await graph.refresh();
    const root = graph.item(request.ciId);
    if (!root) throw new NotFound("configuration item", request.ciId);
    const walk = graph.walk(request.ciId, request.relationshipTypes, request.maxDepth);
    return new EncodedResponse(AnalyzeImpactResponseSchema, encodeImpactResponse(root, walk, request.pathDetail));
  };
}
