// The release service's reactions to rdm.deployment.events.v1 through its public interfaces:
// deployment events published on the Kafka protocol as the deployment service's relay would,
// the release read back over gRPC. Includes a replay of the whole topic by a new consumer group.
import { randomBytes, randomUUID } from "node:crypto";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
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
  ChangeRequestImplementedSchema,
  ChangeRequestReleaseUnlinkedSchema,
  ChangeRequestScheduledSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentSucceededSchema,
  EnvironmentRegisteredSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  DeploymentOutcome,
  LogEntryKind,
  type Release,
  ReleasePhase,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { PublishedStreams, uniqueId, waitFor } from "@rdm/testkit";
import type { Producer } from "kafkajs";
import pg from "pg";
import { STANDARD_MODEL } from "../src/domain/models.js";
import { type Harness, type ReleaseClient, registration, req, startHarness } from "./harness.js";

let h: Harness;
let manager: ReleaseClient;
let producer: Producer;
let db: pg.Pool;
const modelName = `deploy-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  h = await startHarness();
  manager = await h.client("rita", ["release-manager"]);
  const kafka = createKafka({
    brokers: h.brokers,
    clientId: uniqueId("it-deploy"),
    logger: createLogger("test", "warn"),
  });
  producer = createProducer(kafka);
  await producer.connect();
  db = new pg.Pool({ connectionString: h.databaseUrl, max: 3 });
  await createModel(modelName);
  await publish(EnvironmentRegisteredSchema, "environment-test", { environment: { name: "test", promotionRank: 2 } });
  await publish(EnvironmentRegisteredSchema, "environment-production", {
    environment: { name: "production", promotionRank: 4, promotesFrom: "test" },
  });
  // Nothing follows the sandbox, but its definition says it is not production.
  await publish(EnvironmentRegisteredSchema, "environment-sandbox", {
    environment: { name: "sandbox", promotionRank: 9, production: false },
  });
  await waitFor(async () => (await db.query("SELECT 1 FROM deployment_environments")).rowCount === 3, {
    timeoutMs: 30_000,
    description: "the promotion order in the release service",
  });
});

afterAll(async () => {
  await producer?.disconnect();
  await db?.end();
  await h?.stop();
});

const TRACE_ID = randomBytes(16).toString("hex");

const deployments = new PublishedStreams("executor-1");

/** Publishes one deployment event as the deployment service's relay does (CloudEvents binary mode). */
async function publish<D extends DescMessage>(
  schema: D,
  subject: string,
  init: Omit<MessageInitShape<D>, "metadata" | "$typeName">,
  correlationId = randomUUID(),
): Promise<string> {
  const event = deployments.event("rdm/deployment", schema, subject, init, {
    occurredAt: timestampFromDate(new Date()),
    correlationId,
    causationId: randomUUID(),
  });
  await publishEvents(producer, `${h.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    { ...event, traceparent: `00-${TRACE_ID}-${randomBytes(8).toString("hex")}-01` },
  ]);
  return event.id;
}

async function get(releaseId: string): Promise<Release> {
  const { release } = await manager.getRelease({ releaseId });
  if (!release) throw new Error("no release");
  return release;
}

/**
 * The standard model from DEPLOYMENT on, without tasks (the tests are about what deployments do),
 * its DEPLOYMENT phase with `deployment`'s settings.
 */
async function createModel(name: string, deployment: object = {}) {
  const phases = [ReleasePhase.REGISTRATION, ReleasePhase.DEPLOYMENT, ReleasePhase.VERIFICATION, ReleasePhase.REVIEW];
  await manager.createReleaseModel({
    ...req(),
    model: {
      name,
      phases: [
        ...phases.map((phase) => (phase === ReleasePhase.DEPLOYMENT ? { phase, ...deployment } : { phase })),
        STANDARD_MODEL.phases.find((p) => p.phase === ReleasePhase.CLOSED),
      ],
    },
  } as never);
}

async function releaseInDeployment(model = modelName): Promise<string> {
  const { release } = await manager.registerRelease(registration({ modelName: model }));
  const releaseId = release?.releaseId as string;
  const advanced = await manager.advanceReleasePhase({ ...req(), releaseId });
  expect(advanced.release?.phase).toBe(ReleasePhase.DEPLOYMENT);
  return releaseId;
}

const until = (releaseId: string, done: (r: Release) => boolean, description: string) =>
  waitFor(async () => done(await get(releaseId)), { timeoutMs: 30_000, description });

test("a success in test is recorded; a success in production moves the release to VERIFICATION, caused by it", async () => {
  const releaseId = await releaseInDeployment();
  const artifacts = [{ artifactId: randomUUID(), name: "checkout", version: "7.1.0" }];
  await publish(DeploymentSucceededSchema, "d-test", {
    deploymentId: "d-test",
    releaseId,
    environment: "test",
    artifacts,
  });
  await until(releaseId, (r) => r.deployments.length === 1, "the test deployment recorded");
  expect((await get(releaseId)).phase).toBe(ReleasePhase.DEPLOYMENT);

  const correlationId = randomUUID();
  const upstream = await publish(
    DeploymentSucceededSchema,
    "d-prod",
    { deploymentId: "d-prod", releaseId, environment: "production", artifacts },
    correlationId,
  );
  await until(releaseId, (r) => r.phase === ReleasePhase.VERIFICATION, "the release in VERIFICATION");
  const release = await get(releaseId);
  expect(release.deployments.map((d) => [d.deploymentId, d.environment, d.outcome, d.production])).toEqual([
    ["d-test", "test", DeploymentOutcome.SUCCEEDED, false],
    ["d-prod", "production", DeploymentOutcome.SUCCEEDED, true],
  ]);

  const { entries } = await manager.getReleaseHistory({ releaseId });
  const reactions = entries.filter((e) => e.causationId === upstream);
  expect(reactions.map((e) => e.summary)).toEqual([
    "ReleaseDeploymentRecorded",
    "ReleasePhaseAdvanced",
    "ReleaseNotificationRequested",
    "ReleaseNotificationRequested",
  ]);
  expect(reactions.every((e) => e.correlationId === correlationId && e.actor === "executor-1")).toBe(true);
  const traced = await db.query<{ traceparent: string }>(
    "SELECT metadata->>'traceparent' AS traceparent FROM events WHERE stream_id = $1 AND type = $2",
    [releaseId, "rdm.release.v1.ReleasePhaseAdvanced"],
  );
  expect(traced.rows.at(-1)?.traceparent.split("-")[1]).toBe(TRACE_ID);
});

test("a release whose DEPLOYMENT gate asks for its changes IMPLEMENTED moves on when the change is, after the production success", async () => {
  // A model whose deployment phase may be left only once every linked change is IMPLEMENTED,
  // which the change service says after the production deployment, on another topic.
  const gated = `${modelName}-changes`;
  await createModel(gated, { linkedChangeStates: ["IMPLEMENTED"] });
  const releaseId = await releaseInDeployment(gated);
  const changeRequestId = randomUUID();
  await manager.linkChangeRequest({ ...req(), releaseId, changeRequestId });

  const artifacts = [{ artifactId: randomUUID(), name: "checkout", version: "7.2.0" }];
  await publish(DeploymentSucceededSchema, "d-prod-gated", {
    deploymentId: "d-prod-gated",
    releaseId,
    environment: "production",
    artifacts,
  });
  await until(releaseId, (r) => r.deployments.length === 1, "the production success recorded");
  expect((await get(releaseId)).phase).toBe(ReleasePhase.DEPLOYMENT);

  const changes = new PublishedStreams("change-service");
  const implemented = changes.event(
    "rdm/change",
    ChangeRequestImplementedSchema,
    changeRequestId,
    { changeRequestId, linkedReleaseId: releaseId, state: ChangeState.IMPLEMENTED },
    { occurredAt: timestampFromDate(new Date()) },
  );
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [implemented]);
  await until(releaseId, (r) => r.phase === ReleasePhase.VERIFICATION, "the release in VERIFICATION");
  const { entries } = await manager.getReleaseHistory({ releaseId });
  expect(entries.find((e) => e.summary === "ReleasePhaseAdvanced" && e.causationId === implemented.id)).toBeDefined();
});

/**
 * A release in DEPLOYMENT whose linked change, SCHEDULED for two production environments (not
 * registered here: the successes say which environments are production), holds it after its
 * package succeeded in the first. `keeper`: the release the change's events say it is linked to.
 */
async function heldForSecondRegion(keeper?: string) {
  const [eu, us] = [uniqueId("prod-eu"), uniqueId("prod-us")];
  const releaseId = await releaseInDeployment();
  const changeRequestId = randomUUID();
  await manager.linkChangeRequest({ ...req(), releaseId, changeRequestId });
  if (keeper) await manager.linkChangeRequest({ ...req(), releaseId: keeper, changeRequestId });
  await changeScheduled(changeRequestId, keeper ?? releaseId, [eu, us]);
  const artifacts = [{ artifactId: randomUUID(), name: "checkout", version: "7.3.0" }];
  const succeeded = (environment: string) =>
    publish(DeploymentSucceededSchema, `d-${environment}`, {
      deploymentId: `d-${environment}`,
      releaseId,
      environment,
      artifacts,
      production: true,
      productionEnvironments: [eu, us].sort(),
    });
  await succeeded(eu);
  await until(releaseId, (r) => r.deployments.length === 1, `the success in ${eu} recorded`);
  expect((await get(releaseId)).phase).toBe(ReleasePhase.DEPLOYMENT);
  return { releaseId, changeRequestId, second: us, succeededInSecond: () => succeeded(us) };
}

/** The change SCHEDULED for `environments`, linked to `releaseId`, once this service knows it. */
async function changeScheduled(changeRequestId: string, releaseId: string, environments: string[]) {
  const scheduled = changeEvents.event(
    "rdm/change",
    ChangeRequestScheduledSchema,
    changeRequestId,
    { changeRequestId, linkedReleaseId: releaseId, state: ChangeState.SCHEDULED, environments },
    { occurredAt: timestampFromDate(new Date()) },
  );
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [scheduled]);
  await waitFor(
    async () =>
      (
        await db.query("SELECT 1 FROM change_request_states WHERE change_request_id = $1 AND environments = $2", [
          changeRequestId,
          environments,
        ])
      ).rowCount === 1,
    { timeoutMs: 30_000, description: "the change and its environments known" },
  );
}

const changeEvents = new PublishedStreams("change-service");

test("a release whose change names two production environments (as its successes say) keeps deploying until the package succeeded in both", async () => {
  const { releaseId, succeededInSecond } = await heldForSecondRegion();
  await succeededInSecond();
  await until(releaseId, (r) => r.phase === ReleasePhase.VERIFICATION, "the release in VERIFICATION");
});

test("a release held for a second region moves on once the change holding it is unlinked, by the release or by the change's answer", async () => {
  const held = await heldForSecondRegion();
  const unlinked = await manager.unlinkChangeRequest({
    ...req(),
    releaseId: held.releaseId,
    changeRequestId: held.changeRequestId,
  });
  expect([unlinked.release?.phase, unlinked.release?.linkedChangeRequestIds]).toEqual([ReleasePhase.VERIFICATION, []]);

  // The unlink takes the release's reaction turn: it waits while a reaction holds it.
  const waiting = await heldForSecondRegion();
  const reaction = await db.connect();
  try {
    await reaction.query("BEGIN");
    await reaction.query("SELECT pg_advisory_xact_lock(hashtext('rdm.release-reactions'), hashtext($1))", [
      waiting.releaseId,
    ]);
    const answer = manager.unlinkChangeRequest({
      ...req(),
      releaseId: waiting.releaseId,
      changeRequestId: waiting.changeRequestId,
    });
    await waitFor(
      async () =>
        (
          await db.query(
            `SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database() AND l.objsubid = 2
               AND l.classid = (hashtext('rdm.release-reactions')::bigint & 4294967295)::text::oid
               AND l.objid = (hashtext($1)::bigint & 4294967295)::text::oid`,
            [waiting.releaseId],
          )
        ).rowCount !== 0,
      { timeoutMs: 10_000, description: "the unlink waiting for the release's reaction turn" },
    );
    await reaction.query("COMMIT");
    expect((await answer).release?.phase).toBe(ReleasePhase.VERIFICATION);
  } finally {
    // Should the wait fail, the turn is let go, so the unlink and later reactions do not hang.
    await reaction.query("ROLLBACK");
    reaction.release();
  }

  // Another open change naming the second region holds it still: production as the success said
  // (this service has no definition of either region).
  const twice = await heldForSecondRegion();
  const other = randomUUID();
  await manager.linkChangeRequest({ ...req(), releaseId: twice.releaseId, changeRequestId: other });
  await changeScheduled(other, twice.releaseId, [twice.second]);
  const stillHeld = await manager.unlinkChangeRequest({
    ...req(),
    releaseId: twice.releaseId,
    changeRequestId: twice.changeRequestId,
  });
  expect([stillHeld.release?.phase, stillHeld.release?.linkedChangeRequestIds]).toEqual([
    ReleasePhase.DEPLOYMENT,
    [other],
  ]);
  await twice.succeededInSecond();
  await until(twice.releaseId, (r) => r.phase === ReleasePhase.VERIFICATION, "the release in VERIFICATION");

  // The change answers the held release's link with another release's, which it keeps.
  const keeper = (await manager.registerRelease(registration({ modelName }))).release?.releaseId as string;
  const lost = await heldForSecondRegion(keeper);
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [
    changeEvents.event(
      "rdm/change",
      ChangeRequestReleaseUnlinkedSchema,
      lost.changeRequestId,
      {
        changeRequestId: lost.changeRequestId,
        releaseId: lost.releaseId,
        linkedReleaseId: keeper,
        state: ChangeState.SCHEDULED,
      },
      { occurredAt: timestampFromDate(new Date()) },
    ),
  ]);
  await until(lost.releaseId, (r) => r.phase === ReleasePhase.VERIFICATION, "the release in VERIFICATION");
  expect((await get(lost.releaseId)).linkedChangeRequestIds).toEqual([]);
});

test("the outcome's own word on production wins over the promotion order this service has read so far", async () => {
  // An environment whose registration has not reached this service yet (another partition),
  // and a "test" that has just been made the end of the order there, by events still on the way.
  const releaseId = await releaseInDeployment();
  await publish(DeploymentSucceededSchema, "d-early", {
    deploymentId: "d-early",
    releaseId,
    environment: uniqueId("live"),
    production: false,
  });
  await publish(DeploymentSucceededSchema, "d-test-now", {
    deploymentId: "d-test-now",
    releaseId,
    environment: "test",
    production: true,
  });
  await until(releaseId, (r) => r.deployments.length === 2, "both outcomes recorded");
  const release = await get(releaseId);
  expect(release.phase).toBe(ReleasePhase.VERIFICATION);
  // Two partitions: recorded in either order.
  expect(release.deployments.map((d) => [d.deploymentId, d.production]).sort()).toEqual([
    ["d-early", false],
    ["d-test-now", true],
  ]);
  // Without the field (an older event), the promotion order read from the topic decides: not production.
  const older = await releaseInDeployment();
  await publish(DeploymentSucceededSchema, "d-old", { deploymentId: "d-old", releaseId: older, environment: "test" });
  await until(older, (r) => r.deployments.length === 1, "the older event recorded");
  expect((await get(older)).deployments[0]?.production).toBe(false);
  // The environment's definition, when it says, decides over the promotion order.
  await publish(DeploymentSucceededSchema, "d-sandbox", {
    deploymentId: "d-sandbox",
    releaseId: older,
    environment: "sandbox",
  });
  await until(older, (r) => r.deployments.length === 2, "the sandbox outcome recorded");
  const sandboxed = await get(older);
  expect([sandboxed.phase, sandboxed.deployments.find((d) => d.environment === "sandbox")?.production]).toEqual([
    ReleasePhase.DEPLOYMENT,
    false,
  ]);
});

test("a failure and its rollback are deviations in the log and history, told to the owner and the coordinator", async () => {
  const releaseId = await releaseInDeployment();
  const reason = "verification failed: error rate 7% above 2%";
  const base = { deploymentId: "d-bad", releaseId, environment: "production", reason };
  const failed = await publish(DeploymentFailedSchema, "d-bad", base);
  const rolledBack = await publish(DeploymentRolledBackSchema, "d-bad", base);
  await until(releaseId, (r) => r.log.length === 2, "two deviations");

  const release = await get(releaseId);
  expect(release.phase).toBe(ReleasePhase.DEPLOYMENT);
  expect(release.log.map((l) => [l.kind, l.text])).toEqual([
    [LogEntryKind.DEVIATION, `deployment d-bad to production (production) failed: ${reason}`],
    [LogEntryKind.DEVIATION, `deployment d-bad to production (production) was rolled back: ${reason}`],
  ]);
  const { entries } = await manager.getReleaseHistory({ releaseId });
  const deviations = entries.filter((e) => e.summary === "ReleaseDeviationRecorded");
  expect(deviations.map((e) => [e.causationId, e.reason])).toEqual([
    [failed, reason],
    [rolledBack, reason],
  ]);
  const { deliveries } = await manager.listNotificationDeliveries({ releaseId });
  expect(
    deliveries.filter((d) => d.trigger === "rdm.release.v1.ReleaseDeviationRecorded").map((d) => d.recipients),
  ).toEqual([
    ["olivia", "carl"],
    ["olivia", "carl"],
  ]);
});

test("a release full to its size limit still records a deployment's outcome", async () => {
  const releaseId = await releaseInDeployment();
  // Log entries of 20,000, then 2,000, then 200 bytes until each is refused: the release is then
  // within 200 bytes of its limit.
  const refusals: (string | undefined)[] = [];
  for (const emojis of [5000, 500, 50]) {
    let refused: string | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const text = "\u{1F600}".repeat(emojis);
      await manager
        .recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.ISSUE, text })
        .catch((error: unknown) => {
          refused = errorDetails(error).preconditionFailure?.violations[0]?.type;
        });
    }
    refusals.push(refused);
  }
  expect(refusals).toEqual(["release.size_limit", "release.size_limit", "release.size_limit"]);
  const reason = `smoke tests failed: ${"x".repeat(1000)}`;
  await publish(DeploymentFailedSchema, "d-full", { deploymentId: "d-full", releaseId, environment: "test", reason });
  await until(releaseId, (r) => r.deployments.length === 1, "the outcome recorded on the full release");
  expect((await get(releaseId)).log.at(-1)?.kind).toBe(LogEntryKind.DEVIATION);
});

test("an outcome for a release this service does not know is skipped; the consumer goes on", async () => {
  const orphan = await publish(DeploymentSucceededSchema, "d-orphan", {
    deploymentId: "d-orphan",
    releaseId: randomUUID(),
    environment: "production",
  });
  await waitFor(
    async () => (await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [orphan])).rowCount === 1,
    { timeoutMs: 30_000, description: "the orphan outcome marked handled (skipped, not retried)" },
  );
  const releaseId = await releaseInDeployment();
  await publish(DeploymentSucceededSchema, "d-next", { deploymentId: "d-next", releaseId, environment: "test" });
  await until(releaseId, (r) => r.deployments.length === 1, "the next outcome handled");
});

test("a replay of the whole deployment topic by a new consumer group changes no release", async () => {
  const releaseId = await releaseInDeployment();
  await publish(DeploymentSucceededSchema, "d-replay", {
    deploymentId: "d-replay",
    releaseId,
    environment: "production",
  });
  await until(releaseId, (r) => r.phase === ReleasePhase.VERIFICATION, "the release in VERIFICATION");
  const handled = async () =>
    (
      await db.query<{ consumer_group: string; n: string }>(
        `SELECT consumer_group, count(*) AS n FROM rdm_handled_events WHERE topic LIKE $1 GROUP BY consumer_group`,
        [`%${DEPLOYMENT_EVENTS_TOPIC}`],
      )
    ).rows;
  const before = await db.query<{ stream_id: string; version: string }>(
    "SELECT stream_id, max(version)::text AS version FROM events GROUP BY stream_id ORDER BY stream_id",
  );
  const [live] = await handled();
  const replayGroup = uniqueId("release-replay");
  await h.startInstance({ RELEASE_CONSUMER_GROUP: replayGroup });
  await waitFor(
    async () => (await handled()).find((g) => g.consumer_group === `${replayGroup}.deployments`)?.n === live?.n,
    { timeoutMs: 60_000, description: "the new consumer group through the whole topic" },
  );
  const after = await db.query(
    "SELECT stream_id, max(version)::text AS version FROM events GROUP BY stream_id ORDER BY stream_id",
  );
  expect(after.rows).toEqual(before.rows);
});
