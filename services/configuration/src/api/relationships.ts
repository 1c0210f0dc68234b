import { create } from "@bufbuild/protobuf";
import { NotFound } from "@rdm/grpc";
import {
  AddRelationshipResponseSchema,
  ConfigurationService,
  ListRelationshipsResponseSchema,
  RemoveRelationshipResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { findConfigurationItem, relationshipsOf } from "../store/read-model.js";
import { analyzeImpactHandler } from "./analyze-impact.js";
import {
  type ConfigurationApiDeps,
  type ConfigurationHandlers,
  configurationCommandRpc,
  identityOf,
} from "./configuration-rpc.js";

const M = ConfigurationService.method;

/** Relationships between configuration items, and the impact along them. */
export function relationshipHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "addRelationship" | "removeRelationship" | "listRelationships" | "analyzeImpact"> {
  const { pool } = deps;
  const { onItem } = configurationCommandRpc(deps);
  return {
    async addRelationship(request, ctx) {
      const identity = identityOf(ctx, M.addRelationship.input, request);
      // The target is held until the append commits: a retire of it waits (and then follows the
      // relationship), or committed first and is seen, so a retired item never gains one.
      const source = await onItem(
        ctx,
        identity,
        request.sourceCiId,
        async (tx) => ({
          kind: "addRelationship",
          type: request.type,
          targetCiId: request.targetCiId,
          target: await findConfigurationItem(tx, request.targetCiId, { asTarget: true }),
        }),
        { lockingReads: true },
      );
      return create(AddRelationshipResponseSchema, { source });
    },

    async removeRelationship(request, ctx) {
      const identity = identityOf(ctx, M.removeRelationship.input, request);
      const source = await onItem(ctx, identity, request.sourceCiId, () => ({
        kind: "removeRelationship",
        type: request.type,
        targetCiId: request.targetCiId,
      }));
      return create(RemoveRelationshipResponseSchema, { source });
    },

    async listRelationships(request) {
      if (!(await findConfigurationItem(pool, request.ciId))) throw new NotFound("configuration item", request.ciId);
      return create(ListRelationshipsResponseSchema, await relationshipsOf(pool, request.ciId));
    },
    analyzeImpact: analyzeImpactHandler(pool),
  };
}
