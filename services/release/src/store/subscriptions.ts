import { createHash } from "node:crypto";
import { create, createRegistry, fromBinary } from "@bufbuild/protobuf";
import { type Aggregate, type Command, eventCodec } from "@rdm/command-handler";
import { file_rdm_notification_v1_events } from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import {
  type Subscription,
  SubscriptionSchema,
  type Target,
  TargetSchema,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import type pg from "pg";
import { decide } from "../domain/subscription/decide.js";
import { evolve, initialState } from "../domain/subscription/evolve.js";
import type { SubscriptionCommand, SubscriptionEvent, SubscriptionState } from "../domain/subscription/types.js";
import { recordSubscription } from "./notification-tables.js";

/** The subscription RELEASE_WEBHOOK_URL configures: the same id in every installation. */
export const DEFAULT_SUBSCRIPTION_ID = "00000000-0000-4000-8000-00000000d3fa";

export const subscriptionCodec = eventCodec<SubscriptionEvent>(
  createRegistry(file_rdm_notification_v1_events),
  "release",
);

/** Subscription streams: `subscription-<id>`, of type "subscription", in the release service's store. */
export const subscriptions: Aggregate<SubscriptionState, SubscriptionEvent> = {
  streamType: "subscription",
  idOf: (streamId) => streamId.slice("subscription-".length),
  initialState,
  evolve,
};

export const subscriptionStreamId = (subscriptionId: string) => `subscription-${subscriptionId}`;

/** What the events keep of a secret: tells two apart, reveals neither. */
export const secretFingerprint = (secret: string) =>
  secret ? createHash("sha256").update(secret).digest("hex").slice(0, 12) : "";

/**
 * A target as events may carry it (they are published), and its secret: a webhook's signing
 * secret, or a chat webhook's URL, which is itself the credential (Slack, Teams, Mattermost), so
 * events and reads show only its origin.
 */
export function withoutSecrets(target: Target, webhookSecret: string): { target: Target; secret: string } {
  if (target.kind.case !== "chat") return { target, secret: webhookSecret };
  const url = target.kind.value.url;
  const redacted = create(TargetSchema, {
    kind: { case: "chat", value: { url: `${new URL(url).origin}/…`, template: target.kind.value.template } },
  });
  return { target: redacted, secret: url };
}

/**
 * A subscription command as the command handler runs it; the read model (and the new secret,
 * which no event carries) are written in the append's transaction.
 */
export function subscriptionCommand(
  subscriptionId: string,
  command: SubscriptionCommand,
  secret?: string,
): Command<SubscriptionState, SubscriptionEvent> {
  return {
    aggregate: subscriptions,
    streamId: subscriptionStreamId(subscriptionId),
    decide: (state, ctx) => decide(command, state, ctx),
    project: (tx, outcome) => recordSubscription(tx, outcome.after, outcome.events, secret),
  };
}

/**
 * The subscriptions' read model rows, by status (deleted ones only when asked for, or asked for
 * by id: a deleted subscription is still read, with its deliveries).
 */
export async function listSubscriptions(
  db: Pick<pg.Pool, "query">,
  where: { owner?: string; status?: number; subscriptionId?: string },
): Promise<Subscription[]> {
  const { rows } = await db.query<{ snapshot: Buffer }>(
    `SELECT snapshot FROM notification_subscriptions
     WHERE ($1 = '' OR owner = $1) AND (CASE WHEN $2 = 0 THEN ($3 <> '' OR status <> 4) ELSE status = $2 END)
       AND ($3 = '' OR subscription_id::text = $3)
     ORDER BY subscription_id`,
    [where.owner ?? "", where.status ?? 0, where.subscriptionId ?? ""],
  );
  return rows.map((r) => fromBinary(SubscriptionSchema, new Uint8Array(r.snapshot)));
}
