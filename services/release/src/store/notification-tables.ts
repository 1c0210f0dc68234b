import { toBinary } from "@bufbuild/protobuf";
import type { Migration } from "@rdm/eventstore";
import { instantOf } from "@rdm/proto";
import { type Subscription, SubscriptionSchema } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { type Release, ReleaseStatus, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import type { SubscriptionEvent, SubscriptionState } from "../domain/subscription/types.js";

/** Tables of task deadlines and notification subscriptions, after the release tables' migrations. */
export const notificationMigrations: Migration[] = [
  {
    version: 5,
    name: "task deadlines",
    sql: `
      -- Durable schedule of task due times: one row per task with a due time, fired once.
      CREATE TABLE release_task_deadlines (
        release_id uuid NOT NULL,
        task_id    text NOT NULL,
        due_at     timestamptz NOT NULL,
        fired_at   timestamptz,
        outcome    text,
        PRIMARY KEY (release_id, task_id)
      );
      CREATE INDEX release_task_deadlines_due ON release_task_deadlines (due_at) WHERE fired_at IS NULL;
      -- Tasks reported overdue and not done since (ListReleases overdue_tasks_only).
      ALTER TABLE release_index ADD COLUMN overdue_tasks int NOT NULL DEFAULT 0;`,
  },
  {
    version: 6,
    name: "notification subscriptions",
    sql: `
      -- Current state of each subscription (read model of its stream), written with its events.
      CREATE TABLE notification_subscriptions (
        subscription_id    uuid PRIMARY KEY,
        owner              text NOT NULL,
        status             int NOT NULL,
        active_since       timestamptz NOT NULL,
        from_configuration boolean NOT NULL,
        snapshot           bytea NOT NULL
      );
      -- Webhook secrets: never in events (they are published), never returned by reads.
      CREATE TABLE notification_subscription_secrets (
        subscription_id uuid PRIMARY KEY,
        secret          text NOT NULL
      );
      -- One row per subscription and event it matched. HELD: matched while paused or suspended.
      CREATE TABLE subscription_deliveries (
        delivery_id     uuid PRIMARY KEY,
        subscription_id uuid NOT NULL,
        event_id        text NOT NULL,
        event_type      text NOT NULL,
        payload         jsonb NOT NULL,
        status          text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'HELD', 'SKIPPED')),
        attempts        int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        last_error      text NOT NULL DEFAULT '',
        occurred_at     timestamptz NOT NULL,
        delivered_at    timestamptz,
        UNIQUE (subscription_id, event_id)
      );
      CREATE INDEX subscription_deliveries_due ON subscription_deliveries (next_attempt_at) WHERE status = 'PENDING';
      CREATE INDEX subscription_deliveries_list ON subscription_deliveries (subscription_id, occurred_at DESC);`,
  },
];

/**
 * The due times of the releases' open tasks, as rows (release id, task id, due at) of
 * release_task_deadlines, written in the release's transaction (release-projection.ts). The
 * count of overdue tasks is written with the release's index row (taskOverdueCount).
 */
export const taskDeadlineRows = (releases: Release[]) =>
  releases.flatMap((release) =>
    release.status === ReleaseStatus.ACTIVE
      ? release.tasks.flatMap((task) =>
          task.status !== TaskStatus.DONE && task.status !== TaskStatus.CANCELLED && task.dueAt
            ? [[release.releaseId, task.taskId, instantOf(task.dueAt).toISOString()] as const]
            : [],
        )
      : [],
  );

/** Tasks reported overdue and not done since, of an active release (ListReleases overdue_tasks_only). */
export const taskOverdueCount = (release: Release): number =>
  release.status === ReleaseStatus.ACTIVE ? release.tasks.filter((t) => t.overdue).length : 0;

/** Writes a subscription's read model row: its current state, nothing else. */
export async function saveSubscription(db: Pick<pg.PoolClient, "query">, s: Subscription): Promise<void> {
  await db.query(
    `INSERT INTO notification_subscriptions (subscription_id, owner, status, active_since, from_configuration, snapshot)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (subscription_id) DO UPDATE SET owner = $2, status = $3, active_since = $4, snapshot = $6`,
    [
      s.subscriptionId,
      s.owner,
      s.status,
      instantOf(s.activeSince, new Date(0)),
      s.fromConfiguration,
      Buffer.from(toBinary(SubscriptionSchema, s)),
    ],
  );
}

/**
 * Writes a subscription's read model in the append's transaction, and what its status change
 * means for its deliveries: pausing or suspending holds the pending ones; resuming sends the
 * held ones only when asked (deliver_missed), otherwise skips them.
 */
export async function recordSubscription(
  tx: pg.PoolClient,
  state: SubscriptionState,
  appended: SubscriptionEvent[],
  secret: string | undefined,
): Promise<void> {
  const s = state.subscription;
  if (!s) return;
  await saveSubscription(tx, s);
  if (secret)
    await tx.query(
      `INSERT INTO notification_subscription_secrets (subscription_id, secret) VALUES ($1, $2)
       ON CONFLICT (subscription_id) DO UPDATE SET secret = $2`,
      [s.subscriptionId, secret],
    );
  for (const event of appended) {
    const held = (from: string, to: string) =>
      tx.query("UPDATE subscription_deliveries SET status = $3 WHERE subscription_id = $1 AND status = $2", [
        s.subscriptionId,
        from,
        to,
      ]);
    if (event.$typeName === "rdm.notification.v1.SubscriptionDeleted") {
      await held("PENDING", "SKIPPED");
      await held("HELD", "SKIPPED");
    }
    if (
      event.$typeName === "rdm.notification.v1.SubscriptionPaused" ||
      event.$typeName === "rdm.notification.v1.SubscriptionSuspended"
    )
      await held("PENDING", "HELD");
    if (event.$typeName === "rdm.notification.v1.SubscriptionResumed")
      await held("HELD", event.deliverMissed ? "PENDING" : "SKIPPED");
  }
}
