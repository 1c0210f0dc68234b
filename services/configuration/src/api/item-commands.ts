import { create } from "@bufbuild/protobuf";
import { requestFingerprint } from "@rdm/grpc";
import {
  ChangeConfigurationItemStatusResponseSchema,
  ConfigurationService,
  RegisterConfigurationItemResponseSchema,
  UpdateConfigurationItemResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { holdForStatusChange } from "../store/read-model.js";
import {
  type ConfigurationApiDeps,
  type ConfigurationHandlers,
  configurationCommandRpc,
  newCiId,
  registrationCommand,
} from "./configuration-rpc.js";

/** Registering and changing configuration items. */
export function itemCommandHandlers(
  deps: ConfigurationApiDeps,
): Pick<
  ConfigurationHandlers,
  "registerConfigurationItem" | "updateConfigurationItem" | "changeConfigurationItemStatus"
> {
  const { onItem } = configurationCommandRpc(deps);
  return {
    async registerConfigurationItem(request, ctx) {
      const hash = requestFingerprint(
        ConfigurationService.method.registerConfigurationItem.input,
        request,
        ctx.principal.subject,
      );
      const ciId = newCiId();
      const item = await onItem(ctx, request.requestId, hash, ciId, () => registrationCommand(ciId, request), {
        newStream: true,
      });
      return create(RegisterConfigurationItemResponseSchema, { item });
    },

    async updateConfigurationItem(request, ctx) {
      const hash = requestFingerprint(
        ConfigurationService.method.updateConfigurationItem.input,
        request,
        ctx.principal.subject,
      );
      const item = await onItem(ctx, request.requestId, hash, request.ciId, () => ({
        kind: "updateConfigurationItem",
        name: request.name,
        owner: request.owner,
        setAttributes: request.setAttributes,
        removedAttributes: request.removedAttributes,
      }));
      return create(UpdateConfigurationItemResponseSchema, { item });
    },

    async changeConfigurationItemStatus(request, ctx) {
      const hash = requestFingerprint(
        ConfigurationService.method.changeConfigurationItemStatus.input,
        request,
        ctx.principal.subject,
      );
      // Waits for relationships being added to it (see holdAsTargets).
      const item = await onItem(
        ctx,
        request.requestId,
        hash,
        request.ciId,
        async (tx) => {
          await holdForStatusChange(tx, request.ciId);
          return { kind: "changeConfigurationItemStatus", status: request.status };
        },
        { lockingReads: true },
      );
      return create(ChangeConfigurationItemStatusResponseSchema, { item });
    },
  };
}
