// The notifier while no subscription exists: the events of its topics pass by without a
// transaction or a handled-marker, once the environments a change's events name and the changes
// a deployment's name are kept, so a subscription created later and filtered by environment or
// change takes the change's or deployment's later events; once one exists, they are matched (and
// marked) as before.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CHANGE_EVENTS_TOPIC,
  createKafka,
  createProducer,
  DEPLOYMENT_EVENTS_TOPIC,
  publishEvents,
  RELEASE_EVENTS_TOPIC,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestRaisedSchema, ChangeRequestRejectedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import {
  DeploymentApprovalGrantedSchema,
  DeploymentPlannedSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { PublishedStreams, uniqueId, untilGroupCaughtUp, waitFor } from "@rdm/testkit";
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

test("without subscriptions the notifier passes events by unmarked but keeps changes' environments and deployments' changes; with one, it matches them", async () => {
  const manager = await h.client("rita", ["release-manager"]);
  await manager.registerRelease(registration());
  const kafka = createKafka({
    brokers: h.brokers,
    clientId: uniqueId("it-admin"),
    logger: createLogger("test", "warn"),
  });
  await untilGroupCaughtUp(kafka, `${h.consumerGroup}.notifier`, `${h.topicPrefix}${RELEASE_EVENTS_TOPIC}`);
  expect(await markers()).toBe(0);

  // A production change raised while no subscription exists.
  const producer = createProducer(kafka);
  await producer.connect();
  const upstream = new PublishedStreams("carl");
  const changeRequestId = randomUUID();
  const changeEvent = (schema: typeof ChangeRequestRaisedSchema | typeof ChangeRequestRejectedSchema, init: object) =>
    upstream.event("rdm/change", schema, changeRequestId, { changeRequestId, ...init } as never, {
      occurredAt: timestampFromDate(h.clock.now()),
      time: h.clock.now(),
    });
  const changes = `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`;
  await publishEvents(producer, changes, [
    changeEvent(ChangeRequestRaisedSchema, { environments: ["production"], state: ChangeState.DRAFT }),
  ]);
  // A deployment planned to implement it, likewise.
  const deploymentId = randomUUID();
  const deploymentEvent = (
    schema: typeof DeploymentPlannedSchema | typeof DeploymentApprovalGrantedSchema,
    init: object,
  ) =>
    upstream.event(
      "rdm/deployment",
      schema,
      deploymentId,
      { deploymentId, environment: "production", ...init },
      {
        occurredAt: timestampFromDate(h.clock.now()),
        time: h.clock.now(),
      },
    );
  const deployments = `${h.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`;
  await publishEvents(producer, deployments, [
    deploymentEvent(DeploymentPlannedSchema, { linkedChangeIds: [changeRequestId] }),
  ]);
  await untilGroupCaughtUp(kafka, `${h.consumerGroup}.notifier`, changes);
  await untilGroupCaughtUp(kafka, `${h.consumerGroup}.notifier`, deployments);
  // Passed by too, once what they name was kept.
  expect(await markers()).toBe(0);

  const notifications = await h.notificationClient("rita", ["release-manager"]);
  const subscribe = async (name: string, filter: { environments?: string[]; changeRequestIds?: string[] } = {}) =>
    (
      await notifications.createSubscription({
        ...req(),
        name,
        // Loopback, nothing listening: the deliveries are recorded whether or not they can be sent.
        target: { kind: { case: "webhook", value: { url: "http://127.0.0.1:4/hook" } } },
        secret: "secret-of-everything-0123456789",
        filter,
      })
    ).subscription?.subscriptionId ?? "";
  const everything = await subscribe("everything");
  const production = await subscribe("production changes", { environments: ["production"] });
  const ofChange = await subscribe("the change", { changeRequestIds: [changeRequestId] });
  const delivered = (subscriptionId: string, type: string) =>
    waitFor(
      async () =>
        (await notifications.listSubscriptionDeliveries({ subscriptionId })).deliveries.some(
          (d) => d.eventType === type,
        ),
      { description: `a delivery of ${type}` },
    );
  // The first registration happened before the subscription: a delivery can only be the second's.
  await manager.registerRelease(registration());
  await delivered(everything, "rdm.release.v1.ReleaseRegistered");
  expect(await markers()).toBeGreaterThan(0);

  // The rejection names no environment: the subscription takes it by the raise's.
  await publishEvents(producer, changes, [
    changeEvent(ChangeRequestRejectedSchema, { state: ChangeState.REJECTED, rejectedBy: "anna" }),
  ]);
  await delivered(production, "rdm.change.v1.ChangeRequestRejected");
  // The approval names no change: the subscription takes it by the plan's.
  await publishEvents(producer, deployments, [deploymentEvent(DeploymentApprovalGrantedSchema, { approver: "anna" })]);
  await delivered(ofChange, DeploymentApprovalGrantedSchema.typeName);
  await producer.disconnect();
});
