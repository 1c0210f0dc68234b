// Notification subscriptions through gRPC, real PostgreSQL, the Kafka protocol and a webhook
// receiver on loopback: filters across topics, per-subscription secrets, pause and resume, a
// failing target suspended while others go on, the test endpoint, and the payload schema.
import { randomUUID } from "node:crypto";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { rebuildQueryTables } from "@rdm/command-handler";
import { EventStore } from "@rdm/eventstore";
import { errorDetails } from "@rdm/grpc";
import {
  CHANGE_EVENTS_TOPIC,
  createKafka,
  createProducer,
  DEPLOYMENT_EVENTS_TOPIC,
  publishEvents,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestDetailsUpdatedSchema,
  ChangeRequestFailedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestRejectedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeploymentApprovalGrantedSchema,
  DeploymentCancelledSchema,
  DeploymentFailedSchema,
  DeploymentPlannedSchema,
  DeploymentScheduledSchema,
  DeploymentStepClaimedSchema,
  DeploymentStepFailedSchema,
  EnvironmentRegisteredSchema,
  StepKind,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  DeliveryStatus,
  ListSubscriptionDeliveriesRequestSchema,
} from "@rdm/proto/gen/rdm/notification/v1/notification_service_pb.js";
import {
  type SubscriptionFilterSchema,
  SubscriptionStatus,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { LogEntryKind, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { encodePageToken, pageTokenScope } from "@rdm/runtime";
import { PublishedStreams, uniqueId, waitFor } from "@rdm/testkit";
import type { Producer } from "kafkajs";
import pg from "pg";
import { releaseQueryTables } from "../src/store/query-tables.js";
import {
  type Harness,
  type NotificationClient,
  type ReleaseClient,
  registration,
  req,
  startHarness,
} from "./harness.js";
import { type Received, type Receiver, schemaErrors, signedWith, startReceiver } from "./notification-receiver.js";
import { queryTableRows } from "./query-table-rows.js";

let h: Harness;
let receiver: Receiver;
let producer: Producer;
let manager: ReleaseClient;
let notifications: NotificationClient;
/** The catch-all subscription, created first. */
let allId: string;
const secrets = { a: "secret-of-a-0123456789", b: "secret-of-b-0123456789", all: "secret-of-all-0123456789" };

const failure = (call: Promise<unknown>) =>
  call.then(
    () => {
      throw new Error("call succeeded");
    },
    (e: unknown) => errorDetails(e),
  );

async function subscribe(path: string, filter: MessageInitShape<typeof SubscriptionFilterSchema> = {}) {
  const { subscription } = await notifications.createSubscription({
    ...req(),
    name: path,
    target: { kind: { case: "webhook", value: { url: `${receiver.url}${path}` } } },
    secret: `secret-of-${path.slice(1)}-0123456789`,
    filter,
  });
  return subscription?.subscriptionId as string;
}

/** Whether the catch-all subscription received an event of `type` about `subject`: the notifier has handled it. */
const seenByAll = (type: string, matches: (r: Received) => boolean = () => true) =>
  waitFor(() => receiver.at("/all").find((r) => r.payload.eventType === type && matches(r)), {
    description: `/all received ${type}`,
  });

const deliveries = async (subscriptionId: string) =>
  (await notifications.listSubscriptionDeliveries({ subscriptionId })).deliveries;

function deploymentFailed(environment: string, releaseId: string) {
  const deploymentId = randomUUID();
  const event = create(DeploymentFailedSchema, {
    metadata: create(EventMetadataSchema, {
      eventId: randomUUID(),
      occurredAt: timestampFromDate(h.clock.now()),
      actor: "ci",
      streamId: deploymentId,
      streamVersion: 5n,
    }),
    deploymentId,
    releaseId,
    environment,
    reason: "smoke tests failed",
  });
  return {
    id: event.metadata?.eventId as string,
    type: DeploymentFailedSchema.typeName,
    source: "rdm/deployment",
    subject: deploymentId,
    time: h.clock.now(),
    data: toBinary(DeploymentFailedSchema, event),
  };
}

type DeploymentEventSchema =
  | typeof DeploymentPlannedSchema
  | typeof DeploymentApprovalGrantedSchema
  | typeof DeploymentScheduledSchema
  | typeof DeploymentStepFailedSchema
  | typeof DeploymentStepClaimedSchema
  | typeof DeploymentCancelledSchema;

/** DeploymentFailed events in one produce request (so they reach the notifier in one fetch); their deployment ids. */
async function publishDeploymentsFailed(releaseId: string, ...environments: string[]) {
  const events = environments.map((environment) => deploymentFailed(environment, releaseId));
  await publishEvents(producer, `${h.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, events);
  return events.map((e) => e.subject);
}

const publishDeploymentFailed = async (environment: string, releaseId: string) =>
  (await publishDeploymentsFailed(releaseId, environment))[0] as string;

beforeAll(async () => {
  receiver = await startReceiver();
  h = await startHarness({
    RELEASE_WEBHOOK_URL: `${receiver.url}/default`,
    RELEASE_WEBHOOK_SECRET: "default-secret-0123456789",
    RELEASE_WEBHOOK_POLL_MS: "50",
    RELEASE_WEBHOOK_BACKOFF_MS: "60000",
    RELEASE_WEBHOOK_MAX_ATTEMPTS: "2",
    // A held POST must outlast the other subscription's delivery however slow the machine.
    RELEASE_WEBHOOK_TIMEOUT_MS: "120000",
    NOTIFICATION_LINK_BASE_URL: "http://gateway.test",
  });
  manager = await h.client("rita", ["release-manager"]);
  notifications = await h.notificationClient("rita", ["release-manager"]);
  producer = createProducer(
    createKafka({ brokers: h.brokers, clientId: uniqueId("it-notify"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
  allId = await subscribe("/all");
});

afterAll(async () => {
  await producer?.disconnect();
  await h?.stop();
  await receiver?.close();
});

test("two subscriptions with different filters receive exactly their events, each signed with its own secret", async () => {
  const a = await subscribe("/a", {
    eventTypes: ["rdm.release.v1.ReleaseRegistered"],
    releaseTypes: [ReleaseType.EMERGENCY],
  });
  const b = await subscribe("/b", { eventTypes: ["rdm.deployment.v1.DeploymentFailed"], environments: ["production"] });
  const major = (await manager.registerRelease(registration())).release?.releaseId as string;
  const emergency = (await manager.registerRelease(registration({ type: ReleaseType.EMERGENCY }))).release;
  const inProduction = await publishDeploymentFailed("production", emergency?.releaseId as string);
  const inStaging = await publishDeploymentFailed("staging", major);

  for (const id of [major, emergency?.releaseId])
    await seenByAll("rdm.release.v1.ReleaseRegistered", (r) => r.payload.subject === id);
  for (const id of [inProduction, inStaging])
    await seenByAll("rdm.deployment.v1.DeploymentFailed", (r) => r.payload.subject === id);
  // Every matching delivery was recorded with the events above; wait until they are sent.
  for (const id of [a, b])
    await waitFor(async () => (await deliveries(id)).every((d) => d.status === DeliveryStatus.DELIVERED));

  expect(receiver.at("/a").map((r) => r.payload.subject)).toEqual([emergency?.releaseId]);
  expect(receiver.at("/b").map((r) => r.payload.subject)).toEqual([inProduction]);
  const [toA] = receiver.at("/a") as [Received];
  const [toB] = receiver.at("/b") as [Received];
  expect([signedWith(toA, secrets.a), signedWith(toA, secrets.b)]).toEqual([true, false]);
  expect([signedWith(toB, secrets.b), signedWith(toB, secrets.a)]).toEqual([true, false]);
  expect(toA.notificationId).toBe(toA.payload.notificationId);

  // Readable: enum values by name, the protobuf JSON mapping, links to the gateway's views.
  expect(toA.payload).toMatchObject({
    subscriptionId: a,
    severity: "INFO",
    title: `Release Registered: ${emergency?.key}`,
    links: { release: `http://gateway.test/v1/releases/${emergency?.releaseId}` },
    event: { releaseId: emergency?.releaseId, type: "RELEASE_TYPE_EMERGENCY", phase: "RELEASE_PHASE_REGISTRATION" },
  });
  expect(toB.payload).toMatchObject({
    severity: "CRITICAL",
    links: {
      deployment: `http://gateway.test/v1/deployments/${inProduction}`,
      environment: "http://gateway.test/v1/environments/production/inventory",
    },
    event: { environment: "production", reason: "smoke tests failed", metadata: { streamVersion: "5" } },
  });
  // The default target keeps its own payload (see the release README); every subscription's validates.
  for (const r of receiver.received.filter((r) => r.path !== "/default")) expect(schemaErrors(r.payload)).toEqual([]);
  for (const id of [a, b]) await notifications.deleteSubscription({ ...req(), subscriptionId: id });
});

test("events that arrive together are each matched in the one transaction of their chunk", async () => {
  const environments = Array.from({ length: 6 }, (_, i) => `burst-${i}`);
  const burst = await subscribe("/burst", { environments });
  const deploymentIds = await publishDeploymentsFailed(randomUUID(), ...environments, "elsewhere");
  await waitFor(async () => (await deliveries(burst)).length === environments.length, {
    description: "a delivery for each burst event",
  });
  await waitFor(() => receiver.at("/burst").length === environments.length, { description: "/burst received them" });
  expect(new Set(receiver.at("/burst").map((r) => r.payload.subject))).toEqual(new Set(deploymentIds.slice(0, -1)));
  await notifications.deleteSubscription({ ...req(), subscriptionId: burst });
});

test("a paused subscription receives nothing; resumed, it continues from then on, or with what it missed when asked", async () => {
  const releaseId = (await manager.registerRelease(registration())).release?.releaseId as string;
  h.clock.advance(1_000);
  const p = await subscribe("/paused", { releaseIds: [releaseId] });
  const addTask = async (name: string) => {
    h.clock.advance(1_000);
    await manager.addReleaseTask({ ...req(), releaseId, name, required: false, assignee: "tom" });
    await seenByAll("rdm.release.v1.ReleaseTaskAdded", (r) => JSON.stringify(r.payload.event).includes(name));
  };
  const namesAtPaused = () => receiver.at("/paused").map((r) => (r.payload.event.task as { name: string }).name);

  await notifications.pauseSubscription({ ...req(), subscriptionId: p, reason: "receiver maintenance" });
  await addTask("while paused");
  expect((await deliveries(p)).map((d) => d.status)).toEqual([DeliveryStatus.HELD]);

  await notifications.resumeSubscription({ ...req(), subscriptionId: p });
  await addTask("after resume");
  await waitFor(() => namesAtPaused().length === 1, { description: "the event after the resume" });
  // The receiver answers before the service records the result: wait for the record.
  const statuses = async () => (await deliveries(p)).map((d) => d.status).join();
  await waitFor(async () => (await statuses()) !== `${DeliveryStatus.PENDING},${DeliveryStatus.SKIPPED}`);
  expect(await statuses()).toBe(`${DeliveryStatus.DELIVERED},${DeliveryStatus.SKIPPED}`);

  await notifications.pauseSubscription({ ...req(), subscriptionId: p, reason: "again" });
  await addTask("missed but wanted");
  await notifications.resumeSubscription({ ...req(), subscriptionId: p, deliverMissed: true });
  await waitFor(() => namesAtPaused().length === 2, { description: "the missed event" });
  expect(namesAtPaused()).toEqual(["after resume", "missed but wanted"]);
  // The release was registered before the subscription existed: no history was sent.
  expect(receiver.at("/paused").map((r) => r.payload.eventType)).not.toContain("rdm.release.v1.ReleaseRegistered");
});

test("a target that keeps failing is retried, then its subscription is suspended; the others go on; deleted, it is still read", async () => {
  const d = await subscribe("/down", { eventTypes: ["rdm.release.v1.ReleaseRegistered"] });
  const releaseId = (await manager.registerRelease(registration())).release?.releaseId as string;
  await seenByAll("rdm.release.v1.ReleaseRegistered", (r) => r.payload.subject === releaseId);
  // The first failure recorded (its retry due a backoff later, on the service's clock), then time passes.
  await waitFor(async () => (await deliveries(d))[0]?.attempts === 1, { description: "first attempt recorded" });
  expect(receiver.at("/down")).toHaveLength(1);
  h.clock.advance(60_000);
  const suspended = await waitFor(async () => {
    const { subscription } = await notifications.getSubscription({ subscriptionId: d });
    return subscription?.status === SubscriptionStatus.SUSPENDED && subscription;
  });
  expect(suspended.statusReason).toMatch(/failed 2 times: HTTP 503/);
  const attempts = receiver.at("/down");
  expect(attempts.map((r) => r.notificationId)).toEqual([attempts[0]?.notificationId, attempts[0]?.notificationId]);
  expect(await deliveries(d)).toMatchObject([{ status: DeliveryStatus.FAILED, attempts: 2, lastError: "HTTP 503" }]);

  // The catch-all subscription is unaffected, and keeps receiving.
  const next = (await manager.registerRelease(registration())).release?.releaseId as string;
  await seenByAll("rdm.release.v1.ReleaseRegistered", (r) => r.payload.subject === next);
  const { subscription } = await notifications.resumeSubscription({ ...req(), subscriptionId: d });
  expect(subscription?.status).toBe(SubscriptionStatus.ACTIVE);
  await notifications.deleteSubscription({ ...req(), subscriptionId: d });
  // Deleted, it is still read by id, with its deliveries' history.
  expect((await notifications.getSubscription({ subscriptionId: d })).subscription?.status).toBe(
    SubscriptionStatus.DELETED,
  );
  expect((await deliveries(d)).at(-1)).toMatchObject({ status: DeliveryStatus.FAILED, attempts: 2 });
  // ... but its target hears nothing more, a test send included.
  const sentBefore = receiver.at("/down").length;
  expect((await failure(notifications.testSubscription({ ...req(), subscriptionId: d }))).code).toBe(
    status.FAILED_PRECONDITION,
  );
  expect(receiver.at("/down")).toHaveLength(sentBefore);
});

test("a target gets its deliveries in order: a retry backing off holds the later ones back", async () => {
  const releaseId = (await manager.registerRelease(registration())).release?.releaseId as string;
  receiver.failOnce("/in-order");
  const d = await subscribe("/in-order", {
    releaseIds: [releaseId],
    eventTypes: ["rdm.release.v1.ReleaseLogEntryRecorded"],
  });
  const texts = ["first", "second", "third"];
  for (const text of texts)
    await manager.recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.ISSUE, text });
  // The first one failed (its retry a backoff later on the service's clock), the others recorded.
  await waitFor(
    async () => {
      const all = await deliveries(d);
      return all.length === 3 && all.some((delivery) => delivery.attempts === 1);
    },
    { description: "three deliveries, one attempted once" },
  );
  h.clock.advance(60_000);
  await waitFor(() => receiver.at("/in-order").length === 4, { description: "the retry and the two after it" });
  const textOf = (r: Received) => texts.find((text) => r.body.includes(`"${text}"`));
  expect(receiver.at("/in-order").map(textOf)).toEqual(["first", "first", "second", "third"]);
});

test("a subscription filtered by environment takes a change's events by the change's environments, whatever environment they name", async () => {
  const d = await subscribe("/production-changes", { environments: ["production"] });
  const upstream = new PublishedStreams("carl");
  const changeEvent = <
    S extends typeof ChangeRequestRaisedSchema | typeof ChangeRequestRejectedSchema | typeof ChangeRequestFailedSchema,
  >(
    schema: S,
    changeRequestId: string,
    init: object,
  ) =>
    upstream.event("rdm/change", schema, changeRequestId, { changeRequestId, ...init } as never, {
      occurredAt: timestampFromDate(h.clock.now()),
      time: h.clock.now(),
    });
  const [production, staging, both] = [randomUUID(), randomUUID(), randomUUID()];
  // Raised and rejected in one batch: the notifier reads the raises' environments in each change's
  // stream order.
  const rejected = [production, staging].map((id) =>
    changeEvent(ChangeRequestRejectedSchema, id, { state: ChangeState.REJECTED, rejectedBy: "anna" }),
  );
  // A change for staging and production failed by its staging deployment: production's too.
  const failedInStaging = changeEvent(ChangeRequestFailedSchema, both, {
    state: ChangeState.FAILED,
    reason: "the staging deployment failed",
    deploymentId: randomUUID(),
    environment: "staging",
  });
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [
    changeEvent(ChangeRequestRaisedSchema, production, { environments: ["production"], state: ChangeState.DRAFT }),
    changeEvent(ChangeRequestRaisedSchema, staging, { environments: ["staging"], state: ChangeState.DRAFT }),
    changeEvent(ChangeRequestRaisedSchema, both, { environments: ["staging", "production"], state: ChangeState.DRAFT }),
    ...rejected,
    failedInStaging,
  ]);
  await seenByAll("rdm.change.v1.ChangeRequestRejected", (r) => r.payload.subject === staging);
  await seenByAll("rdm.change.v1.ChangeRequestRejected", (r) => r.payload.subject === production);
  await seenByAll("rdm.change.v1.ChangeRequestFailed", (r) => r.payload.subject === both);
  const received = await waitFor(
    async () => {
      const all = await deliveries(d);
      return all.length >= 4 ? all : undefined;
    },
    { description: "the production changes' four events" },
  );
  expect(received.map((delivery) => delivery.eventType).sort()).toEqual([
    "rdm.change.v1.ChangeRequestFailed",
    "rdm.change.v1.ChangeRequestRaised",
    "rdm.change.v1.ChangeRequestRaised",
    "rdm.change.v1.ChangeRequestRejected",
  ]);
  expect(received.every((delivery) => delivery.eventId !== rejected[1]?.id)).toBe(true);
});

test("a change naming no environment is production's: a subscription filtered by production's name takes its events", async () => {
  // Production as the deployment service defines it, known to the release service from its topic.
  const environment = `prod-${uniqueId("eu")}`;
  const deployments = new PublishedStreams("dora");
  await publishEvents(producer, `${h.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    deployments.event("rdm/deployment", EnvironmentRegisteredSchema, `environment-${environment}`, {
      environment: { name: environment, promotionRank: 4, production: true },
    }),
  ]);
  const db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  await waitFor(
    async () => (await db.query("SELECT 1 FROM deployment_environments WHERE name = $1", [environment])).rowCount === 1,
    { description: "the environment known to the release service" },
  );
  await db.end();
  const d = await subscribe(`/${environment}-changes`, { environments: [environment] });
  const changes = new PublishedStreams("carl");
  const [everywhere, staging, movedToStaging] = [randomUUID(), randomUUID(), randomUUID()];
  const at = { occurredAt: timestampFromDate(h.clock.now()), time: h.clock.now() };
  const raised = (id: string, environments: string[]) =>
    changes.event(
      "rdm/change",
      ChangeRequestRaisedSchema,
      id,
      { changeRequestId: id, environments, state: ChangeState.DRAFT },
      at,
    );
  const rejected = (id: string) =>
    changes.event(
      "rdm/change",
      ChangeRequestRejectedSchema,
      id,
      { changeRequestId: id, state: ChangeState.REJECTED, rejectedBy: "anna" },
      at,
    );
  // Raised naming none, then moved to staging, in one batch: its raise is production's still.
  const movedRaise = raised(movedToStaging, []);
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [
    raised(everywhere, []),
    raised(staging, ["staging"]),
    movedRaise,
    changes.event(
      "rdm/change",
      ChangeRequestDetailsUpdatedSchema,
      movedToStaging,
      { changeRequestId: movedToStaging, environments: ["staging"], state: ChangeState.DRAFT },
      at,
    ),
    rejected(everywhere),
    rejected(staging),
    rejected(movedToStaging),
  ]);
  for (const id of [staging, everywhere, movedToStaging])
    await seenByAll("rdm.change.v1.ChangeRequestRejected", (r) => r.payload.subject === id);
  const received = await waitFor(
    async () => {
      const all = (await deliveries(d)).filter((delivery) => delivery.eventType.startsWith("rdm.change.v1."));
      return all.length >= 3 ? all : undefined;
    },
    { description: "the change naming no environment, both its events, and the other's raise" },
  );
  expect(received.map((delivery) => delivery.eventType).sort()).toEqual([
    "rdm.change.v1.ChangeRequestRaised",
    "rdm.change.v1.ChangeRequestRaised",
    "rdm.change.v1.ChangeRequestRejected",
  ]);
  expect(received.map((delivery) => delivery.eventId)).toContain(movedRaise.id);
});

test("a subscription filtered by change takes every event of a deployment that plans or implements it, also those naming no change", async () => {
  const change = randomUUID();
  const d = await subscribe("/change-deployments", { changeRequestIds: [change] });
  const deployments = new PublishedStreams("dora");
  const at = { occurredAt: timestampFromDate(h.clock.now()), time: h.clock.now() };
  const [planned, scheduled, other] = [randomUUID(), randomUUID(), randomUUID()];
  const named = { releaseId: randomUUID(), environment: "production" };
  const event = <S extends DeploymentEventSchema>(
    schema: S,
    deploymentId: string,
    init: Omit<MessageInitShape<S>, "metadata" | "$typeName"> = {} as never,
  ) => deployments.event("rdm/deployment", schema, deploymentId, { deploymentId, ...named, ...init }, at);
  const topic = `${h.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`;
  // In one produce request (so, as a rule, one fetch): a plan linking the change and its approval;
  // another deployment's start checking it; a third deployment's plan linking another change.
  const approved = event(DeploymentApprovalGrantedSchema, planned, { approver: "anna" });
  const first = [
    event(DeploymentPlannedSchema, planned, { linkedChangeIds: [change] }),
    approved,
    event(DeploymentScheduledSchema, scheduled, { changeRequestIds: [change] }),
    event(DeploymentPlannedSchema, other, { linkedChangeIds: [randomUUID()] }),
  ];
  await publishEvents(producer, topic, first);
  const seen = (...events: { id: string; type: string }[]) =>
    Promise.all(events.map((e) => seenByAll(e.type, (r) => r.payload.eventId === e.id)));
  await seen(approved, ...first.slice(2));
  // Later fetches: by what the notifier kept of each deployment.
  const stepFailed = event(DeploymentStepFailedSchema, scheduled, { stepIndex: 0, reason: "timeout" });
  const cancelled = event(DeploymentCancelledSchema, planned, { reason: "superseded" });
  const otherCancelled = event(DeploymentCancelledSchema, other, { reason: "superseded" });
  await publishEvents(producer, topic, [stepFailed, cancelled, otherCancelled]);
  await seen(stepFailed, cancelled, otherCancelled);
  // Every event was matched (the catch-all saw each); these are the subscription's.
  const received = await deliveries(d);
  expect(received.map((delivery) => delivery.eventType).sort()).toEqual([
    DeploymentApprovalGrantedSchema.typeName,
    DeploymentCancelledSchema.typeName,
    DeploymentPlannedSchema.typeName,
    DeploymentScheduledSchema.typeName,
    DeploymentStepFailedSchema.typeName,
  ]);
  expect(received.map((delivery) => delivery.eventId)).toEqual(
    expect.arrayContaining([approved.id, stepFailed.id, cancelled.id]),
  );
});

test("a subscription filtered by service takes the deployments of releases whose package maps an artifact to it", async () => {
  const service = uniqueId("ci-payments");
  const { release } = await manager.registerRelease(registration());
  const releaseId = release?.releaseId as string;
  await manager.attachReleaseArtifact({
    ...req(),
    releaseId,
    artifactId: uniqueId("art"),
    name: "payments-api",
    version: "4.2.0",
    sha256: "b".repeat(64),
    configurationItemId: service,
  });
  const s = await subscribe("/service-deployments", { serviceIds: [service] });
  // Neither names the service: one deploys its release, the other another release.
  const [ours, others] = [
    await publishDeploymentFailed("production", releaseId),
    await publishDeploymentFailed("production", randomUUID()),
  ];
  for (const deploymentId of [ours, others])
    await seenByAll(DeploymentFailedSchema.typeName, (r) => r.payload.subject === deploymentId);
  // Matched with /all's, in one transaction: what is recorded now is all there is (the attach
  // names the service itself).
  expect((await deliveries(s)).map((delivery) => delivery.eventType).sort()).toEqual([
    DeploymentFailedSchema.typeName,
    "rdm.release.v1.ReleaseArtifactAttached",
  ]);
  const sent = await waitFor(
    () => receiver.at("/service-deployments").find((r) => r.payload.eventType === DeploymentFailedSchema.typeName),
    { description: "the deployment's delivery sent" },
  );
  expect(sent.payload.subject).toBe(ours);
});

test("a subscription filtered by service takes every event of a deployment whose plan targets it, written in any case", async () => {
  const host = uniqueId("ci-host");
  const s = await subscribe("/target-deployments", { serviceIds: [host] });
  const deployments = new PublishedStreams("dora");
  const at = { occurredAt: timestampFromDate(h.clock.now()), time: h.clock.now() };
  const [ours, others] = [randomUUID(), randomUUID()];
  const event = <S extends DeploymentEventSchema>(
    schema: S,
    deploymentId: string,
    init: Omit<MessageInitShape<S>, "metadata" | "$typeName"> = {} as never,
  ) =>
    deployments.event(
      "rdm/deployment",
      schema,
      deploymentId,
      { deploymentId, releaseId: randomUUID(), environment: "production", ...init },
      at,
    );
  // The plan spells the host in capitals, as the deployment service takes it.
  const plan = (deploymentId: string, target: string) =>
    event(DeploymentPlannedSchema, deploymentId, {
      steps: [{ index: 0, kind: StepKind.DEPLOY, targetCiIds: [target] }],
    });
  const topic = `${h.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`;
  const plans = [plan(ours, host.toUpperCase()), plan(others, uniqueId("ci-host"))];
  await publishEvents(producer, topic, plans);
  const seen = (...events: { id: string; type: string }[]) =>
    Promise.all(events.map((e) => seenByAll(e.type, (r) => r.payload.eventId === e.id)));
  await seen(...plans);
  // Later fetches, naming no target: by what the notifier kept of each plan.
  const later = [ours, others].flatMap((deploymentId) => [
    event(DeploymentScheduledSchema, deploymentId),
    event(DeploymentStepClaimedSchema, deploymentId, { stepIndex: 0, executorId: "exec-1", fencingToken: 1n }),
    event(DeploymentCancelledSchema, deploymentId, { reason: "superseded" }),
  ]);
  await publishEvents(producer, topic, later);
  await seen(...later);
  const received = await deliveries(s);
  expect(received.map((delivery) => delivery.eventId).sort()).toEqual(
    [plans[0], ...later.slice(0, 3)].map((e) => e?.id).sort(),
  );
});

test("a target that does not answer holds only its own deliveries: another subscription's arrive meanwhile", async () => {
  const slow = receiver.hold("/slow");
  try {
    const slowId = await subscribe("/slow", { environments: ["slow-env"] });
    const fastId = await subscribe("/fast", { environments: ["fast-env"] });
    await publishDeploymentFailed("slow-env", randomUUID());
    await waitFor(() => slow.waiting(), { description: "/slow holding its delivery" });
    await publishDeploymentFailed("fast-env", randomUUID());
    await waitFor(() => receiver.at("/fast").length === 1, { description: "/fast receiving its delivery" });
    // Delivered while the POST to /slow was still open: not after the sender gave up on it.
    expect(slow.waiting()).toBe(true);
    slow.release();
    await waitFor(async () => (await deliveries(slowId))[0]?.status === DeliveryStatus.DELIVERED, {
      description: "/slow's delivery recorded once answered",
    });
    for (const id of [slowId, fastId]) await notifications.deleteSubscription({ ...req(), subscriptionId: id });
  } finally {
    slow.release();
  }
});

test("the test endpoint sends a signed sample in the shape of every delivery", async () => {
  const [all] = (await notifications.listSubscriptions({})).subscriptions.filter((s) => s.name === "/all");
  const answer = await notifications.testSubscription({ ...req(), subscriptionId: all?.subscriptionId as string });
  expect(answer).toMatchObject({ delivered: true, httpStatus: 204, error: "" });
  const sample = receiver.at("/all").find((r) => r.payload.test) as Received;
  expect(signedWith(sample, secrets.all)).toBe(true);
  expect(schemaErrors(sample.payload)).toEqual([]);
  expect(sample.payload.event).toMatchObject({ toPhase: "RELEASE_PHASE_APPROVAL" });
});

test("a chat target gets its template rendered, its URL kept secret; an updated secret signs from then on", async () => {
  const { subscription: chat } = await notifications.createSubscription({
    ...req(),
    name: "chat",
    target: {
      kind: { case: "chat", value: { url: `${receiver.url}/chat`, template: "[{{severity}}] {{title}} {{link}}" } },
    },
  });
  // A chat webhook's URL is its credential: events and reads keep only its origin.
  expect(chat?.target?.kind.value?.url).toBe(`${receiver.url}/…`);
  await notifications.testSubscription({ ...req(), subscriptionId: chat?.subscriptionId as string });
  const [message] = receiver.at("/chat") as [Received];
  expect((message.payload as unknown as { text: string }).text).toMatch(
    /^\[INFO\] Release Phase Advanced: REL-0000-0000 http:\/\/gateway\.test\/v1\/releases\/[0-9a-f-]{36}$/,
  );

  const rotated = "rotated-secret-0123456789";
  const [all] = (await notifications.listSubscriptions({})).subscriptions.filter((s) => s.name === "/all");
  const { subscription } = await notifications.updateSubscription({
    ...req(),
    subscriptionId: all?.subscriptionId as string,
    name: "/all",
    owner: "sam",
    target: all?.target,
    secret: rotated,
  });
  expect(subscription?.owner).toBe("sam");
  expect(subscription?.secretFingerprint).not.toBe(all?.secretFingerprint);
  const before = receiver.at("/all").length;
  await notifications.testSubscription({ ...req(), subscriptionId: all?.subscriptionId as string });
  const sample = receiver.at("/all")[before] as Received;
  expect([signedWith(sample, rotated), signedWith(sample, secrets.all)]).toEqual([true, false]);
});

test("roles, validation, unknown ids, the configured default subscription, and no secret in reads", async () => {
  const viewer = await h.notificationClient("vic", ["viewer"]);
  const listed = (await viewer.listSubscriptions({})).subscriptions;
  const configured = listed.find((s) => s.fromConfiguration);
  expect(configured).toMatchObject({ status: SubscriptionStatus.ACTIVE, owner: "system:configuration" });
  expect(JSON.stringify(listed, (_, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain("0123456789");
  expect((await failure(viewer.createSubscription({ ...req(), name: "x" }))).code).toBe(status.PERMISSION_DENIED);
  const noSecret = await failure(
    notifications.createSubscription({
      ...req(),
      name: "x",
      target: { kind: { case: "webhook", value: { url: "http://127.0.0.1:4/x" } } },
    }),
  );
  expect([noSecret.code, noSecret.badRequest?.fieldViolations.map((v) => v.field)]).toEqual([
    status.INVALID_ARGUMENT,
    ["secret"],
  ]);
  expect(
    (
      await failure(
        notifications.deleteSubscription({ ...req(), subscriptionId: configured?.subscriptionId as string }),
      )
    ).code,
  ).toBe(status.FAILED_PRECONDITION);
  expect((await failure(notifications.getSubscription({ subscriptionId: randomUUID() }))).code).toBe(status.NOT_FOUND);
  expect((await failure(notifications.listSubscriptionDeliveries({ subscriptionId: randomUUID() }))).code).toBe(
    status.NOT_FOUND,
  );
  expect((await failure(manager.listNotificationDeliveries({ releaseId: randomUUID() }))).code).toBe(status.NOT_FOUND);
  // A command on an unknown subscription names it, as the client knows it.
  const unknown = randomUUID();
  expect(
    (await failure(notifications.pauseSubscription({ ...req(), subscriptionId: unknown, reason: "x" }))).resourceInfo,
  ).toMatchObject({ resourceType: "subscription", resourceName: unknown });
  // The default target still gets the release's own notifications, as before subscriptions.
  await waitFor(() => receiver.at("/default").length > 0, { description: "default subscription delivery" });
});

test("a target URL no delivery could reach is refused, naming its field, at create and update", async () => {
  const target = (kind: "webhook" | "chat", url: string) =>
    kind === "webhook"
      ? { kind: { case: "webhook" as const, value: { url } } }
      : { kind: { case: "chat" as const, value: { url, template: "{{title}}" } } };
  const refusal = async (call: Promise<unknown>) => {
    const details = await failure(call);
    return { code: status[details.code], fields: details.badRequest?.fieldViolations.map((v) => v.field) };
  };
  const create = (kind: "webhook" | "chat", url: string) =>
    refusal(
      notifications.createSubscription({
        ...req(),
        name: "x",
        secret: "0123456789abcdef0123",
        target: target(kind, url),
      }),
    );
  const refused = (field: string) => ({ code: "INVALID_ARGUMENT", fields: [field] });
  expect(
    await Promise.all([
      create("webhook", "data:,hello"),
      create("webhook", "file:///etc/passwd"),
      create("webhook", "ftp://127.0.0.1/x"),
      create("webhook", "http://user:pw@127.0.0.1:9/x"),
      create("webhook", "http://127.0.0.1:0/x"),
      create("webhook", "http://127.0.0.1:25/x"),
      create("chat", "http://127.0.0.1:99999/x"),
      create("chat", "https://user:token@hooks.example/x"),
    ]),
  ).toEqual([...Array(6).fill(refused("target.webhook.url")), refused("target.chat.url"), refused("target.chat.url")]);
  const subscriptionId = await subscribe("/url-checked");
  expect(
    await refusal(
      notifications.updateSubscription({
        ...req(),
        subscriptionId,
        name: "x",
        owner: "olivia",
        target: target("chat", "http://127.0.0.1:70000/x"),
      }),
    ),
  ).toEqual(refused("target.chat.url"));
});

test("a filter naming an event type no topic carries is refused, naming each such type's field, with the target's", async () => {
  const eventTypes = [
    "rdm.release.v1.ReleaseRegistered",
    "rdm.release.v1.ReleaseCreated",
    "rdm.deployment.v1.TargetStatus",
    "rdm.notification.v1.SubscriptionSuspended",
  ];
  const refusal = (url: string, types: string[]) =>
    failure(
      notifications.createSubscription({
        ...req(),
        name: "typo",
        secret: "0123456789abcdef0123",
        target: { kind: { case: "webhook", value: { url } } },
        filter: { eventTypes: types },
      }),
    );
  // Environments named as the deployment service names them: "Production" would match nothing.
  const environments = await failure(
    notifications.createSubscription({
      ...req(),
      name: "typo",
      secret: "0123456789abcdef0123",
      target: { kind: { case: "webhook", value: { url: `${receiver.url}/typo` } } },
      filter: { environments: ["production", "Production"] },
    }),
  );
  expect(environments.badRequest?.fieldViolations.map((v) => [v.field, v.reason])).toEqual([
    ["filter.environments[1]", "string.pattern"],
  ]);
  const unknown = await refusal(`${receiver.url}/typo`, eventTypes);
  expect([status[unknown.code], unknown.badRequest?.fieldViolations.map((v) => v.field)]).toEqual([
    "INVALID_ARGUMENT",
    ["filter.event_types[1]", "filter.event_types[2]"],
  ]);
  // With a target URL no delivery could reach too: every refusal in one answer.
  const both = await refusal("http://127.0.0.1:25/typo", eventTypes);
  expect(both.badRequest?.fieldViolations.map((v) => [v.field, v.reason])).toEqual([
    ["target.webhook.url", "subscription.target_unreachable"],
    ["filter.event_types[1]", "subscription.event_type_unknown"],
    ["filter.event_types[2]", "subscription.event_type_unknown"],
  ]);
  // Each unknown type's refusal names the closest known one.
  const typo = await refusal(`${receiver.url}/typo`, [
    "rdm.change.v1.ChangeSubmitted",
    "rdm.deployment.v1.DeploymentSucceed",
    "rdm.release.v1.SubscriptionCreated",
    "rdm.change.v1.ChangeFoo",
    "rdm.nothing.v1.Anything",
  ]);
  const unlike = (type: string) => `no topic carries ${type} (event types are e.g. rdm.deployment.v1.DeploymentFailed)`;
  expect(typo.badRequest?.fieldViolations.map((v) => v.description)).toEqual([
    "no topic carries rdm.change.v1.ChangeSubmitted; did you mean rdm.change.v1.ChangeRequestSubmitted?",
    "no topic carries rdm.deployment.v1.DeploymentSucceed; did you mean rdm.deployment.v1.DeploymentSucceeded?",
    "no topic carries rdm.release.v1.SubscriptionCreated; did you mean rdm.notification.v1.SubscriptionCreated?",
    unlike("rdm.change.v1.ChangeFoo"),
    unlike("rdm.nothing.v1.Anything"),
  ]);
});

test("deliveries page newest first by token: none twice, none left out; a forged token is refused", async () => {
  const before = (await notifications.listSubscriptionDeliveries({ subscriptionId: allId, pageSize: 500 })).deliveries;
  expect(before.length).toBeGreaterThan(4);
  const paged: typeof before = [];
  let pageToken = "";
  do {
    const page = await notifications.listSubscriptionDeliveries({ subscriptionId: allId, pageSize: 2, pageToken });
    expect(page.deliveries.length).toBeLessThanOrEqual(2);
    paged.push(...page.deliveries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const ids = paged.map((d) => d.deliveryId);
  expect(new Set(ids).size).toBe(ids.length);
  // Deliveries recorded meanwhile may add to the first pages; every earlier one is there.
  expect(ids).toEqual(expect.arrayContaining(before.map((d) => d.deliveryId)));
  const key = (d: (typeof paged)[number]) =>
    [Number(d.occurredAt?.seconds) * 1e3 + (d.occurredAt?.nanos ?? 0) / 1e6, d.deliveryId] as const;
  for (let i = 1; i < paged.length; i++) {
    const [[t1, id1], [t2, id2]] = [
      key(paged[i - 1] as (typeof paged)[number]),
      key(paged[i] as (typeof paged)[number]),
    ];
    expect(t1 > t2 || (t1 === t2 && id1 > id2)).toBe(true);
  }
  const scope = pageTokenScope(
    "release.ListSubscriptionDeliveries",
    create(ListSubscriptionDeliveriesRequestSchema, { subscriptionId: allId }),
  );
  const forged = encodePageToken(scope, "yesterday", "x");
  expect(
    (await failure(notifications.listSubscriptionDeliveries({ subscriptionId: allId, pageToken: forged }))).code,
  ).toBe(status.INVALID_ARGUMENT);
});

test("a deliveries page token pages on for its subscription at any page size; another subscription or list refuses it", async () => {
  const all = (await notifications.listSubscriptionDeliveries({ subscriptionId: allId, pageSize: 500 })).deliveries;
  const first = await notifications.listSubscriptionDeliveries({ subscriptionId: allId, pageSize: 2 });
  const rest = await notifications.listSubscriptionDeliveries({
    subscriptionId: allId,
    pageSize: 500,
    pageToken: first.nextPageToken,
  });
  const ids = [...first.deliveries, ...rest.deliveries].map((d) => d.deliveryId);
  // Deliveries recorded meanwhile may come first; every earlier one is there once.
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids).toEqual(expect.arrayContaining(all.map((d) => d.deliveryId)));

  const other = (await notifications.listSubscriptions({})).subscriptions.find((s) => s.subscriptionId !== allId);
  const refusals = [
    failure(
      notifications.listSubscriptionDeliveries({
        subscriptionId: other?.subscriptionId ?? "",
        pageToken: first.nextPageToken,
      }),
    ),
    failure(manager.listReleases({ pageToken: first.nextPageToken })),
  ];
  for (const refused of await Promise.all(refusals)) {
    expect([refused.code, refused.badRequest?.fieldViolations[0]]).toEqual([
      status.INVALID_ARGUMENT,
      expect.objectContaining({
        field: "page_token",
        description: "page_token does not belong to this list and filters",
      }),
    ]);
  }
});

// Reads every subscription the tests above created, paused, resumed, suspended and deleted.
test("the subscriptions' read model rebuilt from their streams equals the live one, the configured and deleted ones too", async () => {
  const pool = new pg.Pool({ connectionString: h.databaseUrl, max: 2 });
  try {
    const live = await queryTableRows(pool);
    const subscriptions = live.notification_subscriptions as {
      status: SubscriptionStatus;
      from_configuration: boolean;
    }[];
    expect(subscriptions.length).toBeGreaterThan(5);
    expect(subscriptions.map((s) => s.status)).toEqual(
      expect.arrayContaining([SubscriptionStatus.ACTIVE, SubscriptionStatus.DELETED]),
    );
    expect(subscriptions.filter((s) => s.from_configuration)).toHaveLength(1);
    const counts = await rebuildQueryTables(pool, new EventStore(pool), releaseQueryTables);
    expect(counts).toEqual({ release: live.release_index?.length, subscription: subscriptions.length });
    expect(await queryTableRows(pool)).toEqual(live);
  } finally {
    await pool.end();
  }
});
