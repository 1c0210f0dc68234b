import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { type CommandHandler, isRuleViolation } from "@rdm/command-handler";
import { withTransaction } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { type Subscription, SubscriptionSchema } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { type Poller, startPoller } from "@rdm/runtime";
import type pg from "pg";
import type { SubscriptionEvent } from "../domain/subscription/types.js";
import { type NotificationPayload, renderChatText } from "../notifier/payload.js";
import { subscriptionCommand } from "../store/subscriptions.js";
import { postSigned } from "./signed-post.js";
import { LEASE_MARGIN_MS, nextAttemptAt, RUN_LENGTH } from "./webhook-delivery.js";

export const NOTIFIER_ACTOR = "system:notifier";

export interface SubscriptionDeliveryOptions {
  pool: pg.Pool;
  handler: CommandHandler<SubscriptionEvent>;
  clock: () => Date;
  /** First retry delay; doubles per attempt. */
  backoffMs: number;
  /** Attempts of one delivery before it FAILED and its subscription is suspended. */
  maxAttempts: number;
  /** How long a POST may wait for its answer (RELEASE_WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  logger: Logger;
}

interface Claimed {
  delivery_id: string;
  subscription_id: string;
  payload: NotificationPayload;
  attempts: number;
  snapshot: Buffer;
  secret: string | null;
  leaseEnd: Date;
}

/**
 * Sends a payload to a subscription's target: as is to a webhook, signed with `secret`; rendered
 * into `{ text }` for a chat, to the URL kept as its secret (events carry only its origin).
 */
export async function sendToTarget(
  subscription: Subscription,
  secret: string | undefined,
  payload: NotificationPayload,
  now: Date,
  timeoutMs: number,
): Promise<{ status: number; failure: string | undefined }> {
  const target = subscription.target?.kind;
  if (!target?.case) return { status: 0, failure: "the subscription has no target" };
  const { notificationId } = payload;
  if (target.case === "webhook")
    return postSigned({ url: target.value.url, secret, notificationId, body: JSON.stringify(payload), now, timeoutMs });
  if (!secret) return { status: 0, failure: "the chat target's URL is not kept" };
  const body = JSON.stringify({ text: renderChatText(target.value.template, payload) });
  const sent = await postSigned({ url: secret, secret: undefined, notificationId, body, now, timeoutMs });
  // The chat URL is its credential: a failure that quotes it (fetch's "Failed to parse URL from
  // …") is recorded, shown and published with only its origin, as the target is.
  return { ...sent, failure: sent.failure?.replaceAll(secret, target.value.url) };
}

/** Suspends the subscription of a delivery that gave up, in the transaction that records it. */
async function suspend(
  { handler, logger }: Pick<SubscriptionDeliveryOptions, "handler" | "logger">,
  tx: pg.PoolClient,
  claimed: Claimed,
  reason: string,
): Promise<void> {
  try {
    await handler.handleIn(
      tx,
      { actor: NOTIFIER_ACTOR, requestId: randomUUID() },
      subscriptionCommand(claimed.subscription_id, {
        kind: "suspendSubscription",
        reason,
        deliveryId: claimed.delivery_id,
      }),
    );
    logger.warn({ subscription_id: claimed.subscription_id, reason }, "subscription suspended");
  } catch (error) {
    // Paused, suspended or deleted meanwhile: nothing more to stop.
    if (!isRuleViolation(error)) throw error;
  }
}

/** Records a send's outcome while its claim holds; false when the claim had lapsed. */
async function record(
  options: SubscriptionDeliveryOptions,
  claimed: Claimed,
  failure: string | undefined,
): Promise<boolean> {
  const { pool, clock } = options;
  const attempts = claimed.attempts + 1;
  const now = clock();
  const gaveUp = failure !== undefined && attempts >= options.maxAttempts;
  const next = nextAttemptAt(now, options.backoffMs, attempts);
  const status = failure === undefined ? "DELIVERED" : gaveUp ? "FAILED" : "PENDING";
  return withTransaction(pool, async (tx) => {
    const { rowCount } = await tx.query(
      `UPDATE subscription_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6,
         delivered_at = CASE WHEN $3 = 'DELIVERED' THEN $7::timestamptz END
       WHERE delivery_id = $1 AND status = 'PENDING' AND next_attempt_at = $2`,
      [claimed.delivery_id, claimed.leaseEnd, status, attempts, next, failure ?? "", now],
    );
    if (rowCount !== 1) return false;
    if (gaveUp)
      await suspend(options, tx, claimed, `delivery ${claimed.delivery_id} failed ${attempts} times: ${failure}`);
    return true;
  });
}

/**
 * Deliveries being sent at once by one process, each to a different subscription: a send is I/O,
 * so many slots cost little, and targets that hang (each holding its slot for the timeout) leave
 * the others room.
 */
const MAX_SENDING = 32;

/** Most deliveries one round claims (each starting a run). */
const ROUND_SIZE = 10;

/**
 * The next due delivery of any subscription but those being sent to ($3): its subscription's
 * oldest pending one (a retry backing off, or being sent by another replica, holds the later ones
 * back, so each target gets them in order); a target's first try before another's retry, so
 * failing targets do not crowd out the rest.
 */
const NEXT_OF_ANY = `
  SELECT d.delivery_id FROM subscription_deliveries d
  JOIN notification_subscriptions s USING (subscription_id)
  WHERE d.status = 'PENDING' AND d.next_attempt_at <= $1 AND s.status = 1
    AND NOT (d.subscription_id = ANY($3::uuid[]))
    AND NOT EXISTS (SELECT 1 FROM subscription_deliveries e
                    WHERE e.subscription_id = d.subscription_id AND e.status = 'PENDING' AND e.seq < d.seq)
  ORDER BY d.attempts > 0, d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED`;

/**
 * The oldest pending delivery of subscription $3 (the one whose run this process sends), claimed
 * below only if due. It waits for another replica claiming it rather than skip to the next.
 */
const NEXT_OF_ONE = `
  SELECT d.delivery_id FROM subscription_deliveries d
  JOIN notification_subscriptions s USING (subscription_id)
  WHERE d.subscription_id = $3 AND d.status = 'PENDING' AND s.status = 1
  ORDER BY d.seq LIMIT 1 FOR UPDATE OF d`;

/**
 * Claims the next due delivery for a lease: of any subscription but those `busy` (being sent to by
 * this process), or the next of `only`.
 */
async function claimDelivery(
  { pool, clock, timeoutMs }: SubscriptionDeliveryOptions,
  target: { busy: Iterable<string>; only?: string },
): Promise<Claimed | undefined> {
  const now = clock();
  const leaseEnd = new Date(now.getTime() + timeoutMs + LEASE_MARGIN_MS);
  const { rows } = await pool.query<Omit<Claimed, "leaseEnd">>(
    `WITH claimed AS (
       UPDATE subscription_deliveries SET next_attempt_at = $2
       WHERE delivery_id = (${target.only ? NEXT_OF_ONE : NEXT_OF_ANY}) AND next_attempt_at <= $1
       RETURNING delivery_id, subscription_id, payload, attempts)
     SELECT c.*, s.snapshot, k.secret FROM claimed c
     JOIN notification_subscriptions s USING (subscription_id)
     LEFT JOIN notification_subscription_secrets k USING (subscription_id)`,
    [now, leaseEnd, target.only ?? [...target.busy]],
  );
  const row = rows[0];
  return row && { ...row, leaseEnd };
}

/**
 * Rounds of subscription deliveries, as webhook-delivery.ts does for the default target: a due
 * PENDING delivery of an ACTIVE subscription is claimed for a lease (no transaction open during
 * the POST), sent signed with its subscription's secret, and its result recorded only while the
 * claim holds. A failure is retried with doubling backoff; the last allowed attempt marks it
 * FAILED and suspends its subscription in the same transaction (its other pending deliveries are
 * held), so a dead target stops costing rounds while the other subscriptions go on.
 *
 * Sends run beside the rounds, up to MAX_SENDING at once and one per subscription (so each
 * target gets its deliveries in order), a subscription's due deliveries back to back while they
 * succeed: a slow target holds its own deliveries only, not the other subscriptions'. `settled()`
 * waits for the sends started so far.
 */
export function subscriptionDeliveryRounds(options: SubscriptionDeliveryOptions): {
  round: (stopping?: () => boolean) => Promise<number>;
  settled: () => Promise<void>;
} {
  const { clock, timeoutMs, logger } = options;
  /** The poller's: runs end after the send in flight once it stops. */
  let stopping = () => false;

  /** Subscription id -> its delivery being sent by this process. */
  const sending = new Map<string, Promise<void>>();
  const claim = (only?: string) => claimDelivery(options, { busy: sending.keys(), ...(only ? { only } : {}) });

  /** Sends one; whether it was delivered (and recorded so). */
  async function deliver(next: Claimed): Promise<boolean> {
    const subscription = fromBinary(SubscriptionSchema, new Uint8Array(next.snapshot));
    const { failure } = await sendToTarget(subscription, next.secret ?? undefined, next.payload, clock(), timeoutMs);
    if (failure)
      logger.warn(
        { delivery_id: next.delivery_id, subscription_id: next.subscription_id, error: failure },
        "delivery failed",
      );
    const recorded = await record(options, next, failure);
    if (!recorded)
      logger.warn(
        { delivery_id: next.delivery_id },
        "delivery result dropped: the claim lapsed and another replica took it over",
      );
    return recorded && failure === undefined;
  }

  /**
   * Sends `first`, then the subscription's next due deliveries back to back while they succeed
   * (up to RUN_LENGTH), so a target gets a backlog at its own pace, not one a poll.
   */
  async function deliverRun(first: Claimed): Promise<void> {
    let next: Claimed | undefined = first;
    for (let sent = 1; next; sent++) {
      if (!(await deliver(next)) || sent >= RUN_LENGTH || stopping()) return;
      next = await claim(first.subscription_id);
    }
  }

  return {
    // Claims one at a time, so a subscription being sent to is left out of the next claim.
    async round(poller = stopping) {
      stopping = poller;
      let claimed = 0;
      for (; claimed < ROUND_SIZE && sending.size < MAX_SENDING && !stopping(); claimed++) {
        const next = await claim();
        if (!next) break;
        const sent = deliverRun(next)
          .catch((error: Error) => logger.error({ err: error, delivery_id: next.delivery_id }, "delivery failed"))
          .finally(() => sending.delete(next.subscription_id));
        sending.set(next.subscription_id, sent);
      }
      return claimed;
    },
    async settled() {
      await Promise.all(sending.values());
    },
  };
}

export function startSubscriptionDelivery(options: SubscriptionDeliveryOptions & { intervalMs: number }): Poller {
  const { round, settled } = subscriptionDeliveryRounds(options);
  const poller = startPoller("subscription-delivery", options.intervalMs, round, options.logger);
  return {
    runOnce: poller.runOnce,
    async stop() {
      await poller.stop();
      await settled();
    },
  };
}
