import { create } from "@bufbuild/protobuf";
import { NotFound } from "@rdm/grpc";
import { instantOf } from "@rdm/proto";
import { ConfigurationItemChangeSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  GetConfigurationItemHistoryResponseSchema,
  GetConfigurationItemResponseSchema,
  ListConfigurationItemsResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { pageTokenScope } from "@rdm/runtime";
import * as itemAggregate from "../domain/configuration-item.js";
import { type ConfigurationItemEvent, describeChange } from "../domain/configuration-item.js";
import { listConfigurationItems } from "../store/read-model.js";
import { readHistory } from "../store/streams.js";
import {
  type ConfigurationApiDeps,
  type ConfigurationHandlers,
  ciStreamId,
  decodeCursor,
  encodeCursor,
  isItemStream,
  upTo,
} from "./configuration-rpc.js";

/** Reading configuration items and their history. */
export function itemQueryHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "getConfigurationItem" | "listConfigurationItems" | "getConfigurationItemHistory"> {
  const { store, pool } = deps;
  return {
    async getConfigurationItem(request) {
      const history = await readHistory<ConfigurationItemEvent>(store, ciStreamId(request.ciId));
      const { item } = itemAggregate.fold(isItemStream(history) ? upTo(history, request.asOf) : []);
      if (!item) {
        throw new NotFound(
          "configuration item",
          request.ciId,
          request.asOf
            ? `configuration item ${request.ciId} did not exist at ${instantOf(request.asOf).toISOString()}`
            : undefined,
        );
      }
      return create(GetConfigurationItemResponseSchema, { item });
    },

    async listConfigurationItems(request) {
      const scope = pageTokenScope("configuration.ListConfigurationItems", request);
      const { items, next } = await listConfigurationItems(pool, {
        type: request.type,
        owner: request.owner,
        status: request.status,
        nameContains: request.nameContains,
        pageSize: request.pageSize || 100,
        after: decodeCursor(request.pageToken, scope),
      });
      return create(ListConfigurationItemsResponseSchema, { items, nextPageToken: encodeCursor(scope, next) });
    },

    async getConfigurationItemHistory(request) {
      const history = await readHistory<ConfigurationItemEvent>(store, ciStreamId(request.ciId));
      if (!isItemStream(history)) throw new NotFound("configuration item", request.ciId);
      return create(GetConfigurationItemHistoryResponseSchema, {
        changes: history.map((event) =>
          create(ConfigurationItemChangeSchema, {
            version: event.metadata?.streamVersion ?? 0n,
            ...(event.metadata?.occurredAt ? { occurredAt: event.metadata.occurredAt } : {}),
            actor: event.metadata?.actor ?? "",
            eventType: event.$typeName,
            summary: describeChange(event),
          }),
        ),
      });
    },
  };
}
