import { create } from "@bufbuild/protobuf";
import { NotFound, requestFingerprint } from "@rdm/grpc";
import {
  AddRelationshipResponseSchema,
  ConfigurationService,
  ListRelationshipsResponseSchema,
  RemoveRelationshipResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { findConfigurationItem, relationshipsOf } from "../store/read-model.js";
import { analyzeImpactHandler } from "./analyze-impact.js";
import { type ConfigurationApiDeps, type ConfigurationHandlers, configurationCommandRpc } from "./configuration-rpc.js";

/** Relationships between configuration items, and the impact along them. */
export function relationshipHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "addRelationship" | "removeRelationship" | "listRelationships" | "analyzeImpact"> {
  const { pool } = deps;
  const { onItem } = configurationCommandRpc(deps);
  return {
    async addRelationship(request, ctx) {
      const hash = requestFingerprint(
        ConfigurationService.method.addRelationship.input,
        request,
        ctx.principal.subject,
      );
      // The target is held until the append commits: a retire of it waits (and then follows the
      // relationship), or committed first and is seen, so a retired item never gains one.
      const source = await onItem(
        ctx,
        request.requestId,
        hash,
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
      const hash = requestFingerprint(
        ConfigurationService.method.removeRelationship.input,
        request,
        ctx.principal.subject,
      );
      const source = await onItem(ctx, request.requestId, hash, request.sourceCiId, () => ({
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
