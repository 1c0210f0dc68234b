// The gateway's deployment views (deployments per release and environment, the environment
// inventory) from rdm.deployment.events.v1 delivered out of order across partitions: the live
// views name the newest outcomes, a rebuilt gateway (new database and consumer group) serves the
// same, and event types the gateway does not know are skipped, not dead-lettered.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type CloudEvent,
  createKafka,
  createProducer,
  DEPLOYMENT_EVENTS_TOPIC,
  publishEvents,
  RELEASE_EVENTS_TOPIC,
  toKafkaMessage,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { PublishedStreams, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import type { Producer } from "kafkajs";
import pg from "pg";
import { e2eStack, type StartedGateway } from "./harness.js";

const stack = e2eStack("deploy-views");
const topicPrefix = stack.topicPrefix;
const topic = `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`;
let brokers: string[];
let producer: Producer;
let bearer: string;

/** A gateway on a database of its own; `databaseUrl` is where its views are. */
async function gatewayOn(): Promise<{ gateway: StartedGateway; databaseUrl: string }> {
  const gateway = await stack.gateway();
  return { gateway, databaseUrl: gateway.databaseUrl };
}

beforeAll(async () => {
  brokers = await testKafkaBrokers();
  producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("deployer"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
  stack.onStop(() => producer.disconnect());
  bearer = await stack.token("vera", ["viewer"]);
});

afterAll(() => stack.stop());

async function get(gateway: StartedGateway, path: string) {
  const response = await fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
  // biome-ignore lint/suspicious/noExplicitAny: the assertions below say what shape they expect
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

type Artifacts = { name: string; version: string; targetCiIds: string[] }[];
interface Deployment {
  deploymentId: string;
  releaseId: string;
  environment: string;
}

/** Deployment events as the deployment service publishes them (deploymentEvent). */
const deploymentStreams = new PublishedStreams("executor-1");

/** A deployment event as the deployment service publishes it: keyed by deployment id, with its environment sequence. */
function deploymentEvent(
  schema:
    | typeof DeploymentStartedSchema
    | typeof DeploymentSucceededSchema
    | typeof DeploymentFailedSchema
    | typeof DeploymentRolledBackSchema,
  deployment: Deployment,
  environmentSequence: number,
  fields: { artifacts: Artifacts; strategy?: string; reason?: string; failedTargetCiIds?: string[] },
): CloudEvent {
  return deploymentStreams.event(
    "rdm/deployment",
    schema as typeof DeploymentFailedSchema,
    deployment.deploymentId,
    { ...deployment, ...fields, environmentSequence: BigInt(environmentSequence) },
    { occurredAt: timestampFromDate(new Date(Date.UTC(2026, 11, 1, 9, environmentSequence))) },
  );
}

/** Publishes each event to the partition given, so the order across partitions is the test's. */
async function publishTo(partition: number, events: CloudEvent[]) {
  await producer.send({ topic, acks: -1, messages: events.map((e) => ({ ...toKafkaMessage(e), partition })) });
}

test("deployments and inventories from outcomes out of order across partitions: live names the newest, rebuilt equals live", async () => {
  const { gateway: live, databaseUrl } = await gatewayOn();
  const [blue, green] = [uniqueId("blue"), uniqueId("green")];
  const [api, sidecar] = [uniqueId("api"), uniqueId("sidecar")];
  const [h1, h2, h3] = [uniqueId("host"), uniqueId("host"), uniqueId("host")];
  const release1 = randomUUID();
  const release2 = randomUUID();
  const deployment = (environment: string, releaseId: string) => ({
    deploymentId: randomUUID(),
    releaseId,
    environment,
  });
  const blueOld = deployment(blue, release1);
  const blueNew = deployment(blue, release2);
  const greenGood = deployment(green, release1);
  const greenBad = deployment(green, release2);

  // A type of this topic the gateway does not know yet, ahead of the newest events on partition 0.
  const unknown: CloudEvent = {
    id: randomUUID(),
    type: "rdm.deployment.v1.DeploymentPlanCreated",
    source: "rdm/deployment",
    subject: blueNew.deploymentId,
    time: new Date(),
    data: new Uint8Array([0x0a, 0x03, 0x61, 0x62, 0x63]),
  };
  // The newest of each environment first: blue's upgrade (3, 4) and green's failed canary and its rollback (2, 3, 4).
  await publishTo(0, [
    unknown,
    deploymentEvent(DeploymentStartedSchema, blueNew, 3, {
      strategy: "ROLLING",
      artifacts: [{ name: api, version: "2.0.0", targetCiIds: [h1] }],
    }),
    deploymentEvent(DeploymentSucceededSchema, blueNew, 4, {
      artifacts: [{ name: api, version: "2.0.0", targetCiIds: [h1] }],
    }),
  ]);
  const canary = [
    { name: api, version: "2.0.0", targetCiIds: [h3] },
    { name: sidecar, version: "0.1.0", targetCiIds: [h3] },
  ];
  await publishTo(1, [
    deploymentEvent(DeploymentStartedSchema, greenBad, 2, { strategy: "CANARY", artifacts: canary }),
    deploymentEvent(DeploymentFailedSchema, greenBad, 3, {
      artifacts: canary,
      reason: "error rate above 2%",
      failedTargetCiIds: [h3],
    }),
    deploymentEvent(DeploymentRolledBackSchema, greenBad, 4, {
      artifacts: [{ name: api, version: "1.0.0", targetCiIds: [h3] }],
      reason: "automatic back-out",
    }),
  ]);
  const atSequence = async (environment: string, sequence: number) =>
    waitFor(
      async () => {
        const { status, body } = await get(live, `/v1/environments/${environment}/inventory`);
        return status === 200 && body.lastEnvironmentSequence === sequence ? body : undefined;
      },
      { timeoutMs: 30_000, description: `${environment}'s inventory at sequence ${sequence}` },
    );
  await atSequence(blue, 4);
  await atSequence(green, 4);

  // Then the older outcomes, on the other partitions.
  await publishTo(2, [
    deploymentEvent(DeploymentStartedSchema, blueOld, 1, {
      strategy: "ALL_AT_ONCE",
      artifacts: [{ name: api, version: "1.0.0", targetCiIds: [h1, h2] }],
    }),
    deploymentEvent(DeploymentSucceededSchema, blueOld, 2, {
      artifacts: [{ name: api, version: "1.0.0", targetCiIds: [h1, h2] }],
    }),
  ]);
  await publishTo(3, [
    deploymentEvent(DeploymentSucceededSchema, greenGood, 1, {
      artifacts: [{ name: api, version: "1.0.0", targetCiIds: [h3] }],
    }),
  ]);
  // Caught up once both of release 1's deployments have their outcome.
  const settled = async (gateway: StartedGateway) => {
    const older = (await get(gateway, `/v1/releases/${release1}/deployments`)).body.deployments as { state: string }[];
    return older.length === 2 && older.every((d) => d.state === "SUCCEEDED");
  };
  await waitFor(() => settled(live), { timeoutMs: 30_000, description: "the older outcomes projected" });

  const blueInventory = await atSequence(blue, 4);
  expect(
    blueInventory.entries.map((e: Record<string, unknown>) => [e.targetCiId, e.artifactVersion, e.deploymentId]),
  ).toEqual(
    [
      [h1, "2.0.0", blueNew.deploymentId],
      [h2, "1.0.0", blueOld.deploymentId],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  );
  expect(blueInventory).toMatchObject({
    health: "HEALTHY",
    lastDeploymentId: blueNew.deploymentId,
    lastReleaseId: release2,
  });
  // The rollback is green's newest outcome: the sidecar the canary added is gone, and nothing older overrides it.
  const greenInventory = await atSequence(green, 4);
  expect(greenInventory.entries).toEqual([
    expect.objectContaining({ targetCiId: h3, artifactName: api, artifactVersion: "1.0.0", via: "ROLLED_BACK" }),
  ]);
  expect(greenInventory).toMatchObject({ health: "HEALTHY", lastOutcome: "ROLLED_BACK" });

  const bad = (await get(live, `/v1/deployments/${greenBad.deploymentId}`)).body;
  expect(bad).toMatchObject({
    state: "ROLLED_BACK",
    strategy: "CANARY",
    failureReason: "error rate above 2%",
    failedTargetCiIds: [h3],
    rollbackReason: "automatic back-out",
    artifacts: canary.map((a) => ({ ...a, artifactId: "" })),
    restoredArtifacts: [{ artifactId: "", name: api, version: "1.0.0", targetCiIds: [h3] }],
  });
  expect(bad.startedAt && bad.finishedAt && bad.rolledBackAt).toBeTruthy();
  const ofRelease2 = (await get(live, `/v1/releases/${release2}/deployments`)).body.deployments;
  expect(ofRelease2.map((d: Deployment & { state: string }) => [d.environment, d.state]).sort()).toEqual(
    [
      [blue, "SUCCEEDED"],
      [green, "ROLLED_BACK"],
    ].sort(),
  );
  // The release overview lists them too.
  await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
    new PublishedStreams("olivia").event("rdm/release", ReleaseRegisteredSchema, release2, {
      releaseId: release2,
      key: "REL-2026-0777",
      title: "Payments 2.0",
      type: ReleaseType.MINOR,
      owner: "olivia",
      phase: ReleasePhase.REGISTRATION,
    }),
  ]);
  const overview = await waitFor(
    async () => {
      const { status, body } = await get(live, `/v1/releases/${release2}`);
      return status === 200 ? body : undefined;
    },
    { timeoutMs: 30_000, description: "the release overview" },
  );
  expect(overview.deployments).toEqual(ofRelease2);
  expect((await get(live, "/v1/deployments?pageToken=garbage")).status).toBe(400);
  expect((await get(live, `/v1/environments/${uniqueId("nowhere")}/inventory`)).status).toBe(404);

  // The unknown type was handled (skipped), not dead-lettered.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const handled = await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [unknown.id]);
  await db.end();
  expect(handled.rowCount).toBe(1);

  // Replay: a new gateway reads the topic from the beginning in whatever interleaving it gets.
  const { gateway: rebuilt } = await gatewayOn();
  const views = [
    `/v1/environments/${blue}/inventory`,
    `/v1/environments/${green}/inventory`,
    `/v1/deployments?environment=${blue}`,
    `/v1/deployments?environment=${green}`,
    `/v1/releases/${release1}/deployments`,
    `/v1/releases/${release2}/deployments`,
  ];
  const snapshot = async (gateway: StartedGateway) =>
    JSON.stringify(await Promise.all(views.map(async (path) => (await get(gateway, path)).body)));
  await waitFor(
    async () => {
      const [b, g] = await Promise.all([blue, green].map((e) => get(rebuilt, `/v1/environments/${e}/inventory`)));
      return (await settled(rebuilt)) && b?.body.lastEnvironmentSequence === 4 && g?.body.lastEnvironmentSequence === 4;
    },
    { timeoutMs: 30_000, description: "the rebuilt gateway caught up" },
  );
  expect(await snapshot(rebuilt)).toEqual(await snapshot(live));
}, 120_000);
