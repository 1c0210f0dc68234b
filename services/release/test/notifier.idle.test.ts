// The notifier while no subscription exists: the events of its topics pass by without a
// transaction or a handled-marker; once one exists, they are matched (and marked) as before.
import { createKafka, RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { uniqueId, untilGroupCaughtUp, waitFor } from "@rdm/testkit";
import pg from "pg";
import { type Harness, registration, req, startHarness } from "./harness.js";

let h: Harness;
let pool: pg.Pool;

beforeAll(async () => {
  h = await startHarness();
  pool = new pg.Pool({ connectionString: h.databaseUrl, max: 2 });
});

afterAll(async () => {
  await pool?.end();
  await h?.stop();
});

/** Handled-markers of the notifier's consumer group. */
const markers = async () =>
  Number(
    (
      await pool.query<{ n: string }>("SELECT count(*) AS n FROM rdm_handled_events WHERE consumer_group = $1", [
        `${h.consumerGroup}.notifier`,
      ])
    ).rows[0]?.n,
  );

test("without subscriptions the notifier passes events by unmarked; with one, it matches them", async () => {
  const manager = await h.client("rita", ["release-manager"]);
  await manager.registerRelease(registration());
  const kafka = createKafka({
    brokers: h.brokers,
    clientId: uniqueId("it-admin"),
    logger: createLogger("test", "warn"),
  });
  await untilGroupCaughtUp(kafka, `${h.consumerGroup}.notifier`, `${h.topicPrefix}${RELEASE_EVENTS_TOPIC}`);
  expect(await markers()).toBe(0);

  const notifications = await h.notificationClient("rita", ["release-manager"]);
  const { subscription } = await notifications.createSubscription({
    ...req(),
    name: "everything",
    // Loopback, nothing listening: the deliveries are recorded whether or not they can be sent.
    target: { kind: { case: "webhook", value: { url: "http://127.0.0.1:4/hook" } } },
    secret: "secret-of-everything-0123456789",
  });
  // The first registration happened before the subscription: a delivery can only be the second's.
  await manager.registerRelease(registration());
  await waitFor(
    async () =>
      (
        await notifications.listSubscriptionDeliveries({ subscriptionId: subscription?.subscriptionId ?? "" })
      ).deliveries.some((d) => d.eventType === "rdm.release.v1.ReleaseRegistered"),
    { description: "a delivery of the second registration" },
  );
  expect(await markers()).toBeGreaterThan(0);
});
