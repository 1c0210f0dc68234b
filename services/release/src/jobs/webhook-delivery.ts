import { createHmac } from "node:crypto";
import { withTransaction } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import type pg from "pg";
import { type Poller, startPoller } from "./poller.js";

export const SIGNATURE_HEADER = "x-rdm-signature";
export const TIMESTAMP_HEADER = "x-rdm-timestamp";

/**
 * The signature a receiver recomputes: HMAC-SHA256 with the shared secret over
 * `<timestamp>.<body>`, hex, prefixed "sha256=". The timestamp (unix seconds, also sent in
 * x-rdm-timestamp) lets receivers refuse replays of old deliveries.
 */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

export interface WebhookOptions {
  pool: pg.Pool;
  url: string;
  secret: string;
  clock: () => Date;
  intervalMs: number;
  /** First retry delay; doubles per attempt. */
  backoffMs: number;
  maxAttempts: number;
  timeoutMs?: number;
  logger: Logger;
}

interface DeliveryRow {
  notification_id: string;
  payload: unknown;
  attempts: number;
}

/**
 * Delivers NotificationRequested events (rows of notification_deliveries, written with the
 * events) by HTTP POST. A 2xx answer marks the row DELIVERED; anything else schedules a retry
 * with exponential backoff until maxAttempts, then FAILED. Rows are claimed with FOR UPDATE SKIP
 * LOCKED, so replicas never post the same delivery at the same time. Delivery is at least once:
 * receivers de-duplicate on the x-rdm-notification-id header.
 */
export function startWebhookDelivery(options: WebhookOptions): Poller {
  const { pool, url, secret, clock, logger } = options;

  async function post(row: DeliveryRow): Promise<string | undefined> {
    const body = JSON.stringify(row.payload);
    const timestamp = String(Math.floor(clock().getTime() / 1000));
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-rdm-notification-id": row.notification_id,
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: webhookSignature(secret, timestamp, body),
        },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
      });
      await response.arrayBuffer().catch(() => undefined);
      return response.ok ? undefined : `HTTP ${response.status}`;
    } catch (error) {
      return (error as Error).message;
    }
  }

  const round = () =>
    withTransaction(pool, async (tx) => {
      const { rows } = await tx.query<DeliveryRow>(
        `SELECT notification_id, payload, attempts FROM notification_deliveries
         WHERE status = 'PENDING' AND next_attempt_at <= $1
         ORDER BY next_attempt_at LIMIT 10 FOR UPDATE SKIP LOCKED`,
        [clock()],
      );
      for (const row of rows) {
        const failure = await post(row);
        const attempts = row.attempts + 1;
        const now = clock();
        if (!failure) {
          await tx.query(
            `UPDATE notification_deliveries SET status = 'DELIVERED', attempts = $2, delivered_at = $3, last_error = ''
             WHERE notification_id = $1`,
            [row.notification_id, attempts, now],
          );
          continue;
        }
        const gaveUp = attempts >= options.maxAttempts;
        const next = new Date(now.getTime() + options.backoffMs * 2 ** (attempts - 1));
        await tx.query(
          `UPDATE notification_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5
           WHERE notification_id = $1`,
          [row.notification_id, gaveUp ? "FAILED" : "PENDING", attempts, next, failure],
        );
        logger.warn(
          { notification_id: row.notification_id, attempts, error: failure, gave_up: gaveUp },
          "webhook delivery failed",
        );
      }
      return rows.length;
    });

  return startPoller("webhook-delivery", options.intervalMs, round, logger);
}
