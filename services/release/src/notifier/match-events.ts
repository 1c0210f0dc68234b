import { randomUUID } from "node:crypto";
import { fromBinary, isMessage, type Message } from "@bufbuild/protobuf";
import { textArrayOfJson } from "@rdm/eventstore";
import type { ChunkHandler, CloudEvent, EventHandler } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import {
  ChangeRequestDetailsUpdatedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestScheduledSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import {
  type Subscription,
  SubscriptionSchema,
  SubscriptionStatus,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import type { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import { PRODUCTION_ENVIRONMENT } from "../consumers/deployment-outcomes.js";
import { type EventSubjects, filterMatches, type NotifiedEvent, subjectsOf } from "../domain/subscription/matching.js";
import { decodeNotifiable, eventJson, notificationPayload, occurredAtOf } from "./payload.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The release an event is about, as the release service's own index knows it (type and key). */
async function releaseOf(tx: pg.PoolClient, releaseIds: Set<string>) {
  const ids = [...releaseIds].filter((id) => UUID.test(id));
  if (!ids.length) return undefined;
  const { rows } = await tx.query<{ type: number; key: string }>(
    "SELECT type, key FROM release_index WHERE release_id = ANY($1::uuid[]) LIMIT 1",
    [ids],
  );
  return rows[0];
}

/**
 * The environments of the change an event is about, when the event does not name them (only a
 * change's raise, schedule and detail updates do): as the notifier last read them on the change's
 * stream, and for a change that names none, production's (the change service's "empty:
 * production"), as the deployment service defines it. Undefined for other events.
 */
async function changeEnvironmentsOf(tx: pg.PoolClient, type: string, subjects: EventSubjects) {
  if (!type.startsWith("rdm.change.v1.") || subjects.environments.size || !subjects.changeRequestIds.size)
    return undefined;
  const { rows } = await tx.query<{ environments: string[] }>(
    `SELECT CASE WHEN cardinality(n.environments) > 0 THEN n.environments
              ELSE ARRAY(SELECT e.name FROM deployment_environments e WHERE ${PRODUCTION_ENVIRONMENT}) END
              AS environments
     FROM notifier_change_environments n WHERE n.change_request_id = ANY($1::text[])`,
    [[...subjects.changeRequestIds]],
  );
  return rows.flatMap((row) => row.environments);
}

/** The change events that name the change's environments: kept whether or not a subscription exists. */
const NAMING_ENVIRONMENTS = [
  ChangeRequestRaisedSchema,
  ChangeRequestScheduledSchema,
  ChangeRequestDetailsUpdatedSchema,
];
const namesEnvironments = (type: string) => NAMING_ENVIRONMENTS.find((schema) => schema.typeName === type);

/**
 * Keeps the environments the change events among `events` name (each change's newest), for the
 * change's later events that do not, in each stream's order (its version decides, so the
 * statement is idempotent and needs no transaction of its own): for subscriptions created later too.
 */
async function keepChangeEnvironments(db: Pick<pg.Pool, "query">, events: { type: string; message: Message }[]) {
  const newest = new Map<string, { environments: string[]; version: bigint }>();
  for (const { type, message } of events) {
    const schema = namesEnvironments(type);
    if (!schema || !isMessage(message, schema) || !message.changeRequestId) continue;
    const version = message.metadata?.streamVersion ?? 0n;
    const known = newest.get(message.changeRequestId);
    if (!known || known.version <= version)
      newest.set(message.changeRequestId, { environments: message.environments, version });
  }
  if (!newest.size) return;
  const kept = [...newest];
  await db.query({
    name: "rdm_keep_change_environments",
    text: `INSERT INTO notifier_change_environments AS t (change_request_id, environments, version)
       SELECT id, ${textArrayOfJson("envs")}, version FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS k (id, envs, version)
       ON CONFLICT (change_request_id) DO UPDATE SET environments = EXCLUDED.environments, version = EXCLUDED.version
         WHERE t.version <= EXCLUDED.version`,
    values: [
      kept.map(([id]) => id),
      kept.map(([, k]) => JSON.stringify(k.environments)),
      kept.map(([, k]) => k.version.toString()),
    ],
  });
}

/** The events of a fetch that name a change's environments, decoded (a type none names is left out). */
const namingEnvironments = (events: CloudEvent[]) =>
  events.flatMap((event) => {
    const decoded = namesEnvironments(event.type) && decodeNotifiable(event);
    return decoded ? [{ type: event.type, message: decoded.message }] : [];
  });

const MATCHED_STATUSES = [SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED, SubscriptionStatus.SUSPENDED];

/** Whether any subscription may take an event (see subscriptionsToMatch). */
async function anySubscriptionToMatch(db: Pick<pg.Pool, "query">): Promise<boolean> {
  const { rows } = await db.query({
    name: "rdm_any_subscription_to_match",
    text: "SELECT 1 FROM notification_subscriptions WHERE status IN ($1, $2, $3) AND NOT from_configuration LIMIT 1",
    values: MATCHED_STATUSES,
  });
  return rows.length > 0;
}

/** The subscriptions an event may be delivered to: every one not ended and not from configuration. */
async function subscriptionsToMatch(tx: pg.PoolClient): Promise<Subscription[]> {
  const { rows } = await tx.query<{ snapshot: Buffer }>({
    // Named: parsed and planned once per connection, as every fetch of the notifier reads it.
    name: "rdm_subscriptions_to_match",
    text: "SELECT snapshot FROM notification_subscriptions WHERE status IN ($1, $2, $3) AND NOT from_configuration",
    values: MATCHED_STATUSES,
  });
  return rows.map((row) => fromBinary(SubscriptionSchema, new Uint8Array(row.snapshot)));
}

/** Records the event's deliveries: one per subscription whose filter takes it (see matchEvents). */
async function match(
  { linkBaseUrl, clock }: { linkBaseUrl: string; clock: () => Date },
  envelope: CloudEvent,
  decoded: ReturnType<typeof decodeNotifiable>,
  tx: pg.PoolClient,
  subscriptions: () => Promise<Subscription[]>,
) {
  if (!decoded) return;
  const candidates = await subscriptions();
  if (!candidates.length) return;
  const json = eventJson(decoded.schema, decoded.message);
  const subjects = subjectsOf(json);
  const release = await releaseOf(tx, subjects.releaseIds);
  const event: NotifiedEvent = {
    type: envelope.type,
    occurredAt: occurredAtOf(decoded.message, envelope.time),
    json,
    releaseType: release?.type as ReleaseType | undefined,
    changeEnvironments: await changeEnvironmentsOf(tx, envelope.type, subjects),
  };
  for (const subscription of candidates) {
    const since = (t: typeof subscription.createdAt) => instantOf(t, new Date(0));
    if (event.occurredAt < since(subscription.createdAt) || !filterMatches(subscription, event)) continue;
    // Active: sent, unless it happened while inactive and the subscription resumed from then on.
    const active = subscription.status === SubscriptionStatus.ACTIVE;
    const status = !active ? "HELD" : event.occurredAt >= since(subscription.activeSince) ? "PENDING" : "SKIPPED";
    const notificationId = randomUUID();
    const payload = notificationPayload({
      notificationId,
      subscriptionId: subscription.subscriptionId,
      eventId: envelope.id,
      eventType: envelope.type,
      source: envelope.source,
      subject: envelope.subject,
      occurredAt: event.occurredAt,
      json,
      releaseKey: release?.key,
      linkBaseUrl,
    });
    await tx.query(
      `INSERT INTO subscription_deliveries
         (delivery_id, subscription_id, event_id, event_type, payload, status, next_attempt_at, occurred_at)
       VALUES ($1, $2, $3, $4, $5, $6, $8, $7) ON CONFLICT (subscription_id, event_id) DO NOTHING`,
      [
        notificationId,
        subscription.subscriptionId,
        envelope.id,
        envelope.type,
        JSON.stringify(payload),
        status,
        event.occurredAt,
        clock(),
      ],
    );
  }
}

/**
 * The notifier's consumer handlers (all four topics): each records one delivery per subscription
 * whose filter takes the event, in the consumer's transaction (so a redelivered event adds
 * nothing); a chunk of events reads the subscriptions once. A subscription never receives what
 * happened before it was created; one that is paused or suspended gets the delivery HELD (sent
 * only if resumed with deliver_missed); one that resumed from then on after the event happened
 * gets it SKIPPED. Types no published schema names are skipped. While no subscription exists,
 * events are passed by without a transaction (`wanted`) once the environments a change's events
 * name are kept (for subscriptions created later): a redelivery is matched again, against the
 * subscriptions of then, of which it can only take those created before it happened.
 */
export function matchEvents(
  linkBaseUrl: string,
  clock: () => Date,
  pool: Pick<pg.Pool, "query">,
): { handle: EventHandler; handleChunk: ChunkHandler; wanted: (events: CloudEvent[]) => Promise<boolean> } {
  /** Each event decoded, the changes' environments kept, then each matched. */
  const matchAll = async (events: CloudEvent[], tx: pg.PoolClient, subscriptions: () => Promise<Subscription[]>) => {
    const decoded = events.map((event) => [event, decodeNotifiable(event)] as const);
    await keepChangeEnvironments(
      tx,
      decoded.flatMap(([event, d]) => (d ? [{ type: event.type, message: d.message }] : [])),
    );
    for (const [event, d] of decoded) await match({ linkBaseUrl, clock }, event, d, tx, subscriptions);
  };
  return {
    // With no subscription to match, a fetch is passed by once the environments it names are kept.
    wanted: async (events) => {
      if (await anySubscriptionToMatch(pool)) return true;
      await keepChangeEnvironments(pool, namingEnvironments(events));
      return false;
    },
    handle: (envelope, tx) => matchAll([envelope], tx, () => subscriptionsToMatch(tx)),
    handleChunk: async (events, tx) => {
      let read: Promise<Subscription[]> | undefined;
      const once = () => {
        read ??= subscriptionsToMatch(tx);
        return read;
      };
      await matchAll(
        events.map(({ event }) => event),
        tx,
        once,
      );
    },
  };
}
