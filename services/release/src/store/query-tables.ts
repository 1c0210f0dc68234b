import { createRegistry } from "@bufbuild/protobuf";
import { entityRows, eventCodec, type QueryTables, streamRowsInBatches } from "@rdm/command-handler";
import { file_rdm_notification_v1_events } from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { SubscriptionEvent } from "../domain/subscription/types.js";
import type { ReleaseServiceEvent } from "./event-codec.js";
import { saveSubscription } from "./notification-tables.js";
import { saveReleaseIndex } from "./release-projection.js";
import { releases } from "./releases.js";
import { subscriptions } from "./subscriptions.js";

/**
 * The release service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes them
 * again: release_index (ListReleases, the notifier's and change consumer's lookups) and
 * notification_subscriptions (subscription reads and matching), each row its stream's final state.
 *
 * Not rebuilt, as they are not views of the events alone:
 * - release_deadlines, release_task_deadlines: the jobs' schedules, with when each row fired;
 *   written again they would fire once more.
 * - notification_deliveries, subscription_deliveries: outboxes with their send status and
 *   attempts; written again they would be sent again.
 * - notification_subscription_secrets: never in events (they are published).
 * - release_keys and its sequences: counters handing out keys, not derived from events.
 * - change_request_states, deployment_environments, notifier_change_environments,
 *   notifier_change_keys, notifier_deployment_changes: fed by the change and deployment
 *   services' topics, not by this store.
 * Release models have no table: their streams are read (and cached) as they are.
 */
export const releaseQueryTables: QueryTables<ReleaseServiceEvent | SubscriptionEvent> = {
  tables: ["release_index", "notification_subscriptions"],
  // Both kinds of streams the service appends: releases (and models) and subscriptions.
  codec: eventCodec(createRegistry(file_rdm_release_v1_events, file_rdm_notification_v1_events), "release"),
  streams: {
    release: streamRowsInBatches(releases, async (client, streams) => {
      const indexed = streams.flatMap(({ state }) => state.release ?? []);
      if (indexed.length > 0) await saveReleaseIndex(client, indexed);
      return indexed.length;
    }),
    subscription: entityRows(subscriptions, (s) => s.subscription, saveSubscription),
  },
};
