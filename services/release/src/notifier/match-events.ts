import { randomUUID } from "node:crypto";
import { fromBinary, type Message } from "@bufbuild/protobuf";
import { namesChangeEnvironments } from "@rdm/domain-kernel/change";
import type { ChunkHandler, CloudEvent, EventHandler } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import {
  type Subscription,
  SubscriptionSchema,
  SubscriptionStatus,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import type { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { isUuid } from "@rdm/runtime/process";
import type pg from "pg";
import {
  changeIdOf,
  filterMatches,
  matchedSubjects,
  type NotifiedEvent,
  subjectsOf,
} from "../domain/subscription/matching.js";
import {
  changeEnvironmentsOf,
  environmentsNamed,
  keepChangeEnvironments,
  type NamedEnvironments,
} from "./change-environments.js";
import { changeKeyOf, keepChangeKeys, keyNamed, namesChangeKey } from "./change-keys.js";
import {
  addSaid,
  changesNamed,
  type DeploymentSaid,
  deploymentChangesOf,
  deploymentServicesOf,
  type FetchedDeployments,
  keepDeploymentChanges,
  namesDeploymentChanges,
  nothingSaid,
  startsDeployment,
} from "./deployment-changes.js";
import { decodeNotifiable, eventJson, notificationPayload, occurredAtOf } from "./payload.js";

/** The release an event is about, as the release service's own index knows it (type and key). */
async function releaseOf(tx: pg.PoolClient, releaseIds: Set<string>) {
  const ids = [...releaseIds].filter(isUuid);
  if (!ids.length) return undefined;
  const { rows } = await tx.query<{ type: number; key: string }>(
    "SELECT type, key FROM release_index WHERE release_id = ANY($1::uuid[]) LIMIT 1",
    [ids],
  );
  return rows[0];
}

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

/**
 * What a fetch's events said so far of what later events of their streams name not: a change's
 * environments and key, a deployment's changes. Kept (`keep`) for later fetches once the fetch is
 * matched.
 */
class SaidSoFar {
  readonly environments = new Map<string, string[]>();
  /** The changes each deployment's events named and whether it started, by deployment id. */
  readonly deploymentChanges = new Map<string, DeploymentSaid>();
  /** The changes each start in the fetch names, later ones included (see lookAhead). */
  private readonly starts = new Map<string, readonly string[]>();
  /** What the fetch tells of a deployment beyond its events so far: its start further on, its release's links. */
  readonly deployments: FetchedDeployments = {
    said: this.deploymentChanges,
    starts: this.starts,
    releases: new Map(),
    kept: new Map(),
  };
  /** Each change's key, by change id. */
  readonly changeKeys = new Map<string, string>();
  private readonly namedEnvironments: NamedEnvironments[] = [];

  /** Whether an event of this type says any of it (others need not be decoded). */
  static says = (type: string) => namesChangeEnvironments(type) || namesDeploymentChanges(type) || namesChangeKey(type);

  note(type: string, message: Message, environments = environmentsNamed(type, message)) {
    if (environments) {
      this.environments.set(environments.changeRequestId, environments.environments);
      this.namedEnvironments.push(environments);
    }
    const key = keyNamed(type, message);
    if (key) this.changeKeys.set(key.changeRequestId, key.key);
    const changes = changesNamed(type, message);
    if (changes) {
      const said = this.deploymentChanges.get(changes.deploymentId) ?? nothingSaid();
      addSaid(said, changes);
      this.deploymentChanges.set(changes.deploymentId, said);
    }
  }

  /** Notes the changes each start among the fetch's events names, for the events before it (see deploymentChangesOf). */
  lookAhead(decoded: readonly { type: string; message: Message | undefined }[]) {
    for (const { type, message } of decoded) {
      const named = message && startsDeployment(type) && changesNamed(type, message);
      if (named && !this.starts.has(named.deploymentId)) this.starts.set(named.deploymentId, named.changeRequestIds);
    }
  }

  async keep(db: Pick<pg.Pool, "query">) {
    await keepChangeEnvironments(db, this.namedEnvironments);
    await keepDeploymentChanges(db, this.deploymentChanges);
    await keepChangeKeys(db, this.changeKeys);
  }
}

/** Whether any of the subscriptions filters on this dimension (else it need not be looked up). */
const anyFilters = (subscriptions: Subscription[], dimension: "environments" | "changeRequestIds" | "serviceIds") =>
  subscriptions.some((s) => (s.filter?.[dimension].length ?? 0) > 0);

/** Records the event's deliveries: one per subscription whose filter takes it (see matchEvents). */
async function match(
  { linkBaseUrl, clock }: { linkBaseUrl: string; clock: () => Date },
  envelope: CloudEvent,
  decoded: ReturnType<typeof decodeNotifiable>,
  tx: pg.PoolClient,
  subscriptions: () => Promise<Subscription[]>,
  said: SaidSoFar,
  named: NamedEnvironments | undefined,
) {
  if (!decoded) return;
  const candidates = await subscriptions();
  if (!candidates.length) return;
  const json = eventJson(decoded.schema, decoded.message);
  const jsonSubjects = subjectsOf(json);
  const release = await releaseOf(tx, jsonSubjects.releaseIds);
  const event: NotifiedEvent = {
    type: envelope.type,
    occurredAt: occurredAtOf(decoded.message, envelope.time),
    json,
    releaseType: release?.type as ReleaseType | undefined,
    // A change's events match by the change's environments, those of its implementation (which
    // name the deployment's environment) too: a production watcher hears of a test failure.
    changeEnvironments: anyFilters(candidates, "environments")
      ? await changeEnvironmentsOf(tx, { type: envelope.type, json }, { named, earlier: said.environments })
      : undefined,
    deploymentChanges: anyFilters(candidates, "changeRequestIds")
      ? await deploymentChangesOf(tx, { type: envelope.type, json }, said.deployments)
      : undefined,
    // A deployment's events match its plan's targets and the services its release deploys.
    deploymentServices: anyFilters(candidates, "serviceIds")
      ? await deploymentServicesOf(tx, { type: envelope.type, json }, said.deployments)
      : undefined,
  };
  const subjects = matchedSubjects(event, jsonSubjects);
  // A change's events are titled by its key: looked up once, for the first delivery.
  const changeId = changeIdOf(envelope.type, json);
  let changeKey: Promise<string | undefined> | undefined;
  for (const subscription of candidates) {
    const since = (t: typeof subscription.createdAt) => instantOf(t, new Date(0));
    if (event.occurredAt < since(subscription.createdAt) || !filterMatches(subscription, event, subjects)) continue;
    // Active: sent, unless it happened while inactive and the subscription resumed from then on.
    const active = subscription.status === SubscriptionStatus.ACTIVE;
    const status = !active ? "HELD" : event.occurredAt >= since(subscription.activeSince) ? "PENDING" : "SKIPPED";
    const notificationId = randomUUID();
    if (changeId) changeKey ??= changeKeyOf(tx, changeId, said.changeKeys);
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
      changeKey: await changeKey,
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
 * events are passed by without a transaction (`wanted`) once the environments and key a change's
 * events name and the changes a deployment's name are kept (for subscriptions created later): a
 * redelivery is matched again, against the subscriptions of then, of which it can only take those
 * created before it happened.
 */
export function matchEvents(
  linkBaseUrl: string,
  clock: () => Date,
  pool: Pick<pg.Pool, "query">,
): { handle: EventHandler; handleChunk: ChunkHandler; wanted: (events: CloudEvent[]) => Promise<boolean> } {
  /**
   * Matches each event in order, as the fetch's earlier events told of their streams, then keeps
   * what they told (so the tables hold what came before the fetch meanwhile).
   */
  const matchAll = async (events: CloudEvent[], tx: pg.PoolClient, subscriptions: () => Promise<Subscription[]>) => {
    const said = new SaidSoFar();
    // Each event decoded once: the look-ahead and the matching read the same messages.
    const decodedEvents = events.map((event) => ({ event, decoded: decodeNotifiable(event) }));
    said.lookAhead(decodedEvents.map(({ event, decoded }) => ({ type: event.type, message: decoded?.message })));
    for (const { event, decoded } of decodedEvents) {
      const named = (decoded && environmentsNamed(event.type, decoded.message)) || undefined;
      await match({ linkBaseUrl, clock }, event, decoded, tx, subscriptions, said, named);
      if (decoded) said.note(event.type, decoded.message, named);
    }
    await said.keep(tx);
  };
  return {
    // With no subscription to match, a fetch is passed by once what it says of its streams is kept.
    wanted: async (events) => {
      if (await anySubscriptionToMatch(pool)) return true;
      const said = new SaidSoFar();
      for (const event of events) {
        const decoded = SaidSoFar.says(event.type) && decodeNotifiable(event);
        if (decoded) said.note(event.type, decoded.message);
      }
      await said.keep(pool);
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
