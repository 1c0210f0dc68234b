// How webhook delivery rounds claim rows, against a receiver that answers only when the test
// says so: no transaction stays open during a POST (it would hold back the outbox relay), a
// second replica sends nothing while a claim holds and takes the row over once it lapsed, and the
// lapsed holder's late answer does not overwrite the newer result; the target gets its deliveries
// in order, across replicas too (and the migration numbering them, on rows recorded before it).
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import { createLogger } from "@rdm/observability";
import { createTestDatabase, type TestDatabase, waitFor } from "@rdm/testkit";
import pg from "pg";
import { webhookDeliveryRound } from "../src/jobs/webhook-delivery.js";
import { releaseMigrations } from "../src/store/release-tables.js";
import { withDatabaseAt } from "./database-at-version.js";
import { TestClock } from "./harness.js";

let db: TestDatabase;
let pool: pg.Pool;
let server: Server;
let url: string;
const clock = new TestClock();
/** POSTs the receiver holds: each waits for the test's answer. */
const held: { id: string; answer(status: number): void }[] = [];

beforeAll(async () => {
  db = await createTestDatabase("release_webhook");
  pool = new pg.Pool({ connectionString: db.url });
  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, { component: "release", migrations: releaseMigrations });
  server = createServer((request, response) => {
    request.resume();
    request.on("end", () =>
      held.push({
        id: String(request.headers["x-rdm-notification-id"]),
        answer: (status) => {
          response.statusCode = status;
          response.end();
        },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await pool?.end();
  await db?.drop();
});

/** A replica's delivery round; the POST timeout is far beyond any test so only the test ends a POST. */
const replica = () =>
  webhookDeliveryRound({
    pool,
    url,
    secret: "whsec-0123456789abcdef",
    clock: clock.now,
    backoffMs: 30_000,
    maxAttempts: 3,
    timeoutMs: 120_000,
    logger: createLogger("webhook-claims-test", "error"),
  });

async function pendingDelivery(): Promise<string> {
  const id = randomUUID();
  await pool.query(
    `INSERT INTO notification_deliveries (notification_id, release_id, trigger, recipients, payload, next_attempt_at)
     VALUES ($1, $2, 'rdm.release.v1.ReleaseRegistered', '[]', $3, $4)`,
    [id, randomUUID(), JSON.stringify({ notificationId: id }), clock.now()],
  );
  return id;
}

async function delivery(id: string) {
  const { rows } = await pool.query(
    "SELECT status, attempts, last_error FROM notification_deliveries WHERE notification_id = $1",
    [id],
  );
  return rows[0];
}

const posts = (id: string) => held.filter((p) => p.id === id);

test("while a POST is in flight no transaction is open: events committed meanwhile reach the relay", async () => {
  const id = await pendingDelivery();
  const round = replica()();
  const [post] = await waitFor(() => posts(id).length === 1 && posts(id), { description: "the POST" });

  const store = new EventStore(pool);
  const streamId = `probe-${randomUUID()}`;
  await store.appendToStream(streamId, "no_stream", [{ type: "test.Probe", data: new Uint8Array(), metadata: {} }]);
  // The relay's read: only events below the oldest transaction still running anywhere on the cluster.
  await waitFor(async () => (await store.readAllCommitted()).some((e) => e.streamId === streamId), {
    description: "the event committed during the POST, readable by the relay",
  });

  post?.answer(204);
  expect(await round).toBe(1);
  expect(await delivery(id)).toMatchObject({ status: "DELIVERED", attempts: 1 });
});

test("a claimed delivery is skipped by another replica, taken over when the claim lapsed, and the late answer is dropped", async () => {
  const id = await pendingDelivery();
  const first = replica();
  const second = replica();
  const lapsing = first();
  const [firstPost] = await waitFor(() => posts(id).length === 1 && posts(id), { description: "the first POST" });
  expect(await second()).toBe(0);
  expect(posts(id)).toHaveLength(1);

  // Long past any claim: the first replica counts as gone, the second delivers.
  clock.advance(3600_000);
  const takeover = second();
  const [, secondPost] = await waitFor(() => posts(id).length === 2 && posts(id), { description: "the second POST" });
  secondPost?.answer(204);
  expect(await takeover).toBe(1);
  expect(await delivery(id)).toMatchObject({ status: "DELIVERED", attempts: 1 });

  // The first POST fails after all; its result must not turn the delivery back to PENDING.
  firstPost?.answer(503);
  expect(await lapsing).toBe(1);
  expect(await delivery(id)).toMatchObject({ status: "DELIVERED", attempts: 1, last_error: "" });
});

test("the target gets its deliveries in the order they were recorded: a retry backing off holds the later ones back", async () => {
  const [first, second, third] = [await pendingDelivery(), await pendingDelivery(), await pendingDelivery()];
  const round = replica();
  let ended = false;
  const failing = round().finally(() => {
    ended = true;
  });
  const firstPost = await waitFor(() => posts(first)[0], { description: "the first POST" });
  firstPost.answer(503);
  await waitFor(() => ended || posts(second).length > 0, { description: "the round's end, or the next POST" });
  // The round ended at the failure: the first delivery, backing off, is still the one to send next.
  expect(posts(second)).toHaveLength(0);
  expect(await failing).toBe(1);
  expect(await round()).toBe(0);

  clock.advance(30_000);
  const resumed = round();
  for (const [id, attempt] of [
    [first, 2],
    [second, 1],
    [third, 1],
  ] as const)
    (await waitFor(() => posts(id)[attempt - 1], { description: `attempt ${attempt} of ${id}` })).answer(204);
  expect(await resumed).toBe(3);
  const ours = new Set([first, second, third]);
  expect(held.map((p) => p.id).filter((id) => ours.has(id))).toEqual([first, first, second, third]);
});

test("while one replica's POST is in flight another sends none of the later ones; a stopping round ends after its POST", async () => {
  const [first, second] = [await pendingDelivery(), await pendingDelivery()];
  let stopping = false;
  const round = replica()(() => stopping);
  const firstPost = await waitFor(() => posts(first)[0], { description: "the first POST" });
  expect(await replica()()).toBe(0);
  stopping = true;
  firstPost.answer(204);
  expect(await round).toBe(1);
  expect(posts(second)).toHaveLength(0);

  const next = replica()();
  (await waitFor(() => posts(second)[0], { description: "the second POST" })).answer(204);
  expect(await next).toBe(1);
});

test("the migration numbering the default target's deliveries orders those recorded before it by when they were", async () => {
  await withDatabaseAt("release_webhook_numbered", 12, async (before, migrateTo) => {
    // Recorded at 10:00, 10:01, 10:02, stored in another order.
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const insert = (id: string, at: Date) =>
      before.query(
        `INSERT INTO notification_deliveries (notification_id, release_id, trigger, recipients, payload, next_attempt_at, created_at)
         VALUES ($1, $2, 'rdm.release.v1.ReleaseRegistered', '[]', '{}', now(), $3)`,
        [id, randomUUID(), at],
      );
    for (const i of [2, 0, 1]) await insert(ids[i] as string, new Date(Date.UTC(2026, 11, 6, 10, i)));
    await migrateTo(13);
    ids.push(randomUUID());
    await insert(ids[3] as string, new Date(Date.UTC(2026, 11, 6, 9)));
    const { rows } = await before.query("SELECT notification_id FROM notification_deliveries ORDER BY seq");
    expect(rows.map((row) => row.notification_id)).toEqual(ids);
  });
});
