import { create } from "@bufbuild/protobuf";
import { CiLifecycleStatus } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ChangeConfigurationItemStatusResponseSchema,
  ConfigurationService,
  RegisterConfigurationItemResponseSchema,
  UpdateConfigurationItemResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { holdForRetire } from "../store/read-model.js";
import {
  type ConfigurationApiDeps,
  type ConfigurationHandlers,
  configurationCommandRpc,
  identityOf,
  newCiId,
  registrationCommand,
} from "./configuration-rpc.js";

const M = ConfigurationService.method;

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
      const identity = identityOf(ctx, M.registerConfigurationItem.input, request);
      const ciId = newCiId();
      const item = await onItem(ctx, identity, ciId, () => registrationCommand(ciId, request), {
        newStream: true,
      });
      return create(RegisterConfigurationItemResponseSchema, { item });
    },

    async updateConfigurationItem(request, ctx) {
      const identity = identityOf(ctx, M.updateConfigurationItem.input, request);
      const item = await onItem(ctx, identity, request.ciId, () => ({
        kind: "updateConfigurationItem",
        name: request.name,
        owner: request.owner,
        setAttributes: request.setAttributes,
        removedAttributes: request.removedAttributes,
      }));
      return create(UpdateConfigurationItemResponseSchema, { item });
    },

    async changeConfigurationItemStatus(request, ctx) {
      const command = { kind: "changeConfigurationItemStatus" as const, status: request.status };
      // A retire waits for relationships being added to the item (see holdAsTargets); no other
      // status keeps an item from gaining one.
      const retiring = request.status === CiLifecycleStatus.RETIRED;
      const item = await onItem(
        ctx,
        identityOf(ctx, M.changeConfigurationItemStatus.input, request),
        request.ciId,
        async (tx) => {
          if (retiring) await holdForRetire(tx, request.ciId);
          return command;
        },
        { lockingReads: retiring },
      );
      return create(ChangeConfigurationItemStatusResponseSchema, { item });
    },
  };
}
