import { create } from "@bufbuild/protobuf";
import { NotFound } from "@rdm/grpc";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type AnalyzeImpactRequest,
  type AnalyzeImpactResponse,
  AnalyzeImpactResponseSchema,
  ImpactedItemSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type pg from "pg";
import { compareIds, transitiveDependents } from "../domain/impact.js";
import { ImpactGraph } from "../store/impact-graph.js";
import { findConfigurationItem } from "../store/read-model.js";

/**
 * AnalyzeImpact over the in-memory graph (ImpactGraph), brought up to every commit visible at
 * the call, so the answer is the one the database would give, without a round trip per level.
 */
export function analyzeImpactHandler(pool: pg.Pool): (request: AnalyzeImpactRequest) => Promise<AnalyzeImpactResponse> {
  const graph = new ImpactGraph(pool);
  return async (request) => {
    const [root] = await Promise.all([findConfigurationItem(pool, request.ciId), graph.refresh()]);
    if (!root) throw new NotFound("configuration item", request.ciId);
    const reached = await transitiveDependents(
      request.ciId,
      async (causes) => graph.impactEdges(causes, request.relationshipTypes),
      { maxDepth: request.maxDepth },
    );
    const impacted = reached
      .map((r) => {
        const ci = graph.summary(r.ciId);
        return create(ImpactedItemSchema, {
          ciId: r.ciId,
          name: ci?.name ?? "",
          type: ci?.type ?? CiType.UNSPECIFIED,
          owner: ci?.owner ?? "",
          depth: r.depth,
          path: r.path,
          pathRelationships: r.pathRelationships,
        });
      })
      // By depth, then name as people read them, then id.
      .sort(
        (a, b) => a.depth - b.depth || graph.nameRank(a.name) - graph.nameRank(b.name) || compareIds(a.ciId, b.ciId),
      );
    return create(AnalyzeImpactResponseSchema, {
      root,
      impacted,
      impactedBusinessServiceIds: impacted.filter((i) => i.type === CiType.BUSINESS_SERVICE).map((i) => i.ciId),
    });
  };
}
