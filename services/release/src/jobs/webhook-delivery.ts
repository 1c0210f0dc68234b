import type { Logger } from "@rdm/observability";
import { type Poller, startPoller } from "@rdm/runtime";
import type pg from "pg";
import { postSigned } from "./signed-post.js";

export { SIGNATURE_HEADER, TIMESTAMP_HEADER, webhookSignature } from "./signed-post.js";

export interface WebhookOptions {
  pool: pg.Pool;
  url: string;
  secret: string;
  clock: () => Date;
  /** First retry delay; doubles per attempt. */
  backoffMs: number;
  maxAttempts: number;
  /** How long a POST may wait for its answer (RELEASE_WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  logger: Logger;
}

/**
 * Most deliveries a target gets back to back while they succeed: the default target's in one
 * round, a subscription's before its slot goes back to the rounds.
 */
export const RUN_LENGTH = 100;
/** How long a claim outlasts the POST's timeout: time to record the result, clock skew between replicas. */
export const LEASE_MARGIN_MS = 30_000;

/** The longest wait between two attempts, whatever the attempts and backoff configured. */
export const MAX_BACKOFF_MS = 3_600_000;

/** When a delivery that failed its `attempts`th attempt is tried again: the backoff doubled each time, at most an hour. */
export const nextAttemptAt = (now: Date, backoffMs: number, attempts: number) =>
  new Date(now.getTime() + Math.min(backoffMs * 2 ** Math.min(attempts - 1, 40), MAX_BACKOFF_MS));

interface DeliveryRow {
  notification_id: string;
  payload: unknown;
  attempts: number;
}

interface Claim {
  row: DeliveryRow;
  /** The row's next_attempt_at while claimed; each claim of a row ends later than the one before. */
  leaseEnd: Date;
}

/** POSTs one notification, signed; the failure, or undefined when the receiver accepted it. */
async function post(
  row: DeliveryRow,
  { url, secret, clock, timeoutMs }: Pick<WebhookOptions, "url" | "secret" | "clock" | "timeoutMs">,
): Promise<string | undefined> {
  const body = JSON.stringify(row.payload);
  const notificationId = row.notification_id;
  return (await postSigned({ url, secret, notificationId, body, now: clock(), timeoutMs })).failure;
}

/**
 * One round of webhook delivery: claims rows of notification_deliveries (written with the
 * NotificationRequested events) one at a time, oldest first, and POSTs each, up to RUN_LENGTH or
 * until the poller stops. A 2xx answer marks the row DELIVERED; anything else schedules a retry
 * with exponential backoff (the row, not due, holds the later ones back, so the round ends there)
 * until maxAttempts, then marks it FAILED (the next one goes on). Resolves with the number of rows
 * it claimed.
 *
 * No transaction stays open during a POST: one would hold back the outbox relay of every service
 * on the cluster (it publishes only below the oldest running transaction). A claim instead moves
 * the row's next_attempt_at to the end of a lease, so other replicas send nothing until the lease
 * lapses (a replica that died mid-POST); the result is recorded only while the row still
 * carries that lease, so a holder whose lease lapsed and was taken over cannot overwrite the
 * newer result. Delivery is at least once: receivers de-duplicate on the x-rdm-notification-id header.
 */
export function webhookDeliveryRound(options: WebhookOptions): (stopping?: () => boolean) => Promise<number> {
  const { pool, url, secret, clock, timeoutMs, logger } = options;
  const leaseMs = timeoutMs + LEASE_MARGIN_MS;

  /**
   * Claims the oldest pending row if it is due, in one statement: the target gets its deliveries
   * in the order they were recorded, so a retry waiting on its backoff, or a POST of another
   * replica in flight, holds the later ones back.
   */
  async function claim(): Promise<Claim | undefined> {
    const now = clock();
    const leaseEnd = new Date(now.getTime() + leaseMs);
    const { rows } = await pool.query<DeliveryRow>(
      `UPDATE notification_deliveries SET next_attempt_at = $2
       WHERE notification_id = (
         SELECT notification_id FROM notification_deliveries WHERE status = 'PENDING'
         ORDER BY seq LIMIT 1 FOR UPDATE) AND next_attempt_at <= $1
       RETURNING notification_id, payload, attempts`,
      [now, leaseEnd],
    );
    const row = rows[0];
    return row && { row, leaseEnd };
  }

  /** Records the attempt; false when the lease lapsed and another replica has claimed the row since. */
  async function record({ row, leaseEnd }: Claim, failure: string | undefined): Promise<boolean> {
    const attempts = row.attempts + 1;
    const now = clock();
    const stillClaimed = "notification_id = $1 AND status = 'PENDING' AND next_attempt_at = $2";
    if (!failure) {
      const { rowCount } = await pool.query(
        `UPDATE notification_deliveries SET status = 'DELIVERED', attempts = $3, delivered_at = $4, last_error = ''
         WHERE ${stillClaimed}`,
        [row.notification_id, leaseEnd, attempts, now],
      );
      return rowCount === 1;
    }
    const gaveUp = attempts >= options.maxAttempts;
    const next = nextAttemptAt(now, options.backoffMs, attempts);
    const { rowCount } = await pool.query(
      `UPDATE notification_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6
       WHERE ${stillClaimed}`,
      [row.notification_id, leaseEnd, gaveUp ? "FAILED" : "PENDING", attempts, next, failure],
    );
    logger.warn(
      { notification_id: row.notification_id, attempts, error: failure, gave_up: gaveUp },
      "webhook delivery failed",
    );
    return rowCount === 1;
  }

  return async (stopping = () => false) => {
    let claimed = 0;
    for (; claimed < RUN_LENGTH && !stopping(); claimed++) {
      const next = await claim();
      if (!next) break;
      const failure = await post(next.row, { url, secret, clock, timeoutMs });
      if (!(await record(next, failure)))
        logger.warn(
          { notification_id: next.row.notification_id },
          "webhook delivery result dropped: the claim lapsed and another replica took the delivery over",
        );
    }
    return claimed;
  };
}

/** Runs webhookDeliveryRound every intervalMs. */
export function startWebhookDelivery(options: WebhookOptions & { intervalMs: number }): Poller {
  return startPoller("webhook-delivery", options.intervalMs, webhookDeliveryRound(options), options.logger);
}
