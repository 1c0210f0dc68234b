// The subscription delivery job against real PostgreSQL and a loopback receiver: one round sends
// a subscription's due deliveries back to back, in the order they were recorded (whatever their
// due times), not one a round (one a poll: a target with a backlog got one delivery a second).
// And the migration that numbers the deliveries, on rows recorded before it.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { eventStoreMigrations, runMigrations, withTransaction } from "@rdm/eventstore";
import { createLogger } from "@rdm/observability";
import { SubscriptionSchema, SubscriptionStatus } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import type pg from "pg";
import { subscriptionDeliveryRounds } from "../src/jobs/subscription-delivery.js";
import { releaseMigrations } from "../src/store/release-tables.js";
import { withDatabaseAt } from "./database-at-version.js";
import { type Receiver, startReceiver } from "./notification-receiver.js";

let db: TestDatabase;
let pool: pg.Pool;
let receiver: Receiver;

beforeAll(async () => {
  db = await createTestDatabase("release_subscription_delivery");
  pool = await openDatabase(db.url);
  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, { component: "release", migrations: releaseMigrations });
  receiver = await startReceiver();
});

afterAll(async () => {
  await receiver?.close();
  await pool?.end();
  await db?.drop();
});

/** An active subscription to `path` of the receiver, with `count` deliveries due; their ids in recording order. */
async function subscriptionWithBacklog(path: string, count: number): Promise<string[]> {
  const subscriptionId = randomUUID();
  const subscription = create(SubscriptionSchema, {
    subscriptionId,
    status: SubscriptionStatus.ACTIVE,
    target: { kind: { case: "webhook", value: { url: `${receiver.url}${path}` } } },
  });
  await pool.query(
    `INSERT INTO notification_subscriptions (subscription_id, owner, status, active_since, from_configuration, snapshot)
     VALUES ($1, 'olivia', $2, now(), false, $3)`,
    [subscriptionId, SubscriptionStatus.ACTIVE, Buffer.from(toBinary(SubscriptionSchema, subscription))],
  );
  await pool.query("INSERT INTO notification_subscription_secrets (subscription_id, secret) VALUES ($1, 's3cret')", [
    subscriptionId,
  ]);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const deliveryId = randomUUID();
    ids.push(deliveryId);
    await pool.query(
      `INSERT INTO subscription_deliveries
         (delivery_id, subscription_id, event_id, event_type, payload, status, next_attempt_at, occurred_at)
       VALUES ($1, $2, $3, 'rdm.release.v1.ReleaseLogEntryRecorded', $4, 'PENDING', now() - $5 * interval '1 second', now())`,
      // Each due earlier than the one recorded before it: the order is the recording's, not the due times'.
      [deliveryId, subscriptionId, randomUUID(), { notificationId: deliveryId, n: i }, i + 1],
    );
  }
  return ids;
}

test("one round sends a subscription's backlog back to back, in order", async () => {
  const ids = await subscriptionWithBacklog("/backlog", 5);
  const { round, settled } = subscriptionDeliveryRounds({
    pool,
    // Only a delivery that gives up (none here) suspends its subscription through the handler.
    handler: undefined as never,
    clock: () => new Date(),
    backoffMs: 60_000,
    maxAttempts: 3,
    timeoutMs: 5_000,
    logger: createLogger("test", "warn"),
  });
  await round();
  await settled();
  expect(receiver.at("/backlog").map((r) => r.notificationId)).toEqual(ids);
  const { rows } = await pool.query("SELECT DISTINCT status FROM subscription_deliveries WHERE delivery_id = ANY($1)", [
    ids,
  ]);
  expect(rows).toEqual([{ status: "DELIVERED" }]);
});

test("the migration numbering deliveries orders those recorded before it by their events' time", async () => {
  await withDatabaseAt("release_deliveries_numbered", 10, async (before, migrateTo) => {
    // Recorded at 10:00, 10:01, 10:02, stored (as retries' updates leave them) in another order.
    const subscriptionId = randomUUID();
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    await withTransaction(before, async (tx) => {
      for (const i of [2, 0, 1])
        await tx.query(
          `INSERT INTO subscription_deliveries
             (delivery_id, subscription_id, event_id, event_type, payload, status, next_attempt_at, occurred_at)
           VALUES ($1, $2, $3, 'rdm.release.v1.ReleaseRegistered', '{}', 'PENDING', now(), $4)`,
          [ids[i], subscriptionId, randomUUID(), new Date(Date.UTC(2026, 11, 6, 10, i))],
        );
    });
    await migrateTo(11);
    const after = randomUUID();
    ids.push(after);
    await before.query(
      `INSERT INTO subscription_deliveries
         (delivery_id, subscription_id, event_id, event_type, payload, status, next_attempt_at, occurred_at)
       VALUES ($1, $2, $3, 'rdm.release.v1.ReleaseRegistered', '{}', 'PENDING', now(), now())`,
      [after, subscriptionId, randomUUID()],
    );
    const { rows } = await before.query("SELECT delivery_id FROM subscription_deliveries ORDER BY seq");
    expect(rows.map((row) => row.delivery_id)).toEqual(ids);
  });
});
