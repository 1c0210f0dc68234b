import { create } from "@bufbuild/protobuf";
import { NotFound } from "@rdm/grpc";
import { GetBaselineResponseSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import * as baselineAggregate from "../domain/baseline.js";
import { type BaselineEvent, baselineStreamId } from "../domain/baseline.js";
import { checkPackageConsistency } from "../domain/consistency.js";
import { findArtifacts, findBaseline } from "../store/read-model.js";
import { readHistory } from "../store/streams.js";
import { type ConfigurationApiDeps, type ConfigurationHandlers, upTo } from "./configuration-rpc.js";

/** Environment baselines and package consistency against them. */
export function baselineHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "checkPackageConsistency" | "getBaseline"> {
  const { store, pool } = deps;
  return {
    async checkPackageConsistency(request) {
      const artifacts = await findArtifacts(pool, request.artifactIds);
      const found = new Set(artifacts.map((a) => a.artifactId));
      const missing = request.artifactIds.filter((id) => !found.has(id));
      if (missing.length > 0) throw new NotFound("artifact", missing.join(", "));
      const baseline = request.environment ? await findBaseline(pool, request.environment) : undefined;
      // Keep the caller's order, so problems come out in a stable, meaningful order.
      const ordered = request.artifactIds.map((id) => artifacts.find((a) => a.artifactId === id)).filter((a) => !!a);
      return checkPackageConsistency(ordered, baseline?.entries ?? []);
    },

    async getBaseline(request) {
      const history = upTo(
        await readHistory<BaselineEvent>(store, baselineStreamId(request.environment)),
        request.asOf,
      );
      const { baseline } = baselineAggregate.fold(history);
      if (!baseline) throw new NotFound("baseline", request.environment);
      return create(GetBaselineResponseSchema, { baseline });
    },
  };
}
