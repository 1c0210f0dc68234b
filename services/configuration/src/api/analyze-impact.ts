import { toBinary } from "@bufbuild/protobuf";
import { TimestampSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { durationMs } from "@rdm/domain-kernel/release";
import { EncodedResponse, NotFound } from "@rdm/grpc";
import {
  type AnalyzeImpactRequest,
  AnalyzeImpactResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type pg from "pg";
import { ImpactGraph } from "../store/impact-graph.js";
import { encodeImpactResponse } from "./impact-response.js";

/**
 * How old the graph gets before a call that allows staleness brings it up to date in the
 * background: calls in a stream see a write this long and a round trip after it commits.
 */
const BACKGROUND_REFRESH_MS = 20;

/**
 * AnalyzeImpact over the in-memory graph (ImpactGraph), brought up to every commit visible at
 * the call, so the answer is the one the database would give, without a round trip per level;
 * or, when the request allows it (max_staleness), as last brought up to date, refreshed in the
 * background at most every BACKGROUND_REFRESH_MS. The answer (by depth, then name as people read
 * them, then id) is written straight to bytes.
 */
export function analyzeImpactHandler(
  pool: pg.Pool,
): (request: AnalyzeImpactRequest) => Promise<EncodedResponse<typeof AnalyzeImpactResponseSchema>> {
  const graph = new ImpactGraph(pool);
  return async (request) => {
    const maxStaleness = durationMs(request.maxStaleness);
    const stale = maxStaleness > 0 && Date.now() - graph.asOf <= maxStaleness;
    if (stale) graph.refreshSoon(BACKGROUND_REFRESH_MS);
    // One round trip a call: the refresh reads what changed, the root comes from the graph.
    else await graph.refresh();
    // A root the graph does not know yet may have been registered since: looked up once more
    // after a refresh, so "not found" is always the database's answer.
    const root =
      graph.item(request.ciId) ?? (stale ? await graph.refresh().then(() => graph.item(request.ciId)) : undefined);
    if (!root) throw new NotFound("configuration item", request.ciId);
    const walk = graph.walk(request.ciId, request.relationshipTypes, request.maxDepth);
    const asOf = toBinary(TimestampSchema, timestampFromMs(graph.asOf));
    return new EncodedResponse(AnalyzeImpactResponseSchema, encodeImpactResponse(root, walk, request.pathDetail, asOf));
  };
}
