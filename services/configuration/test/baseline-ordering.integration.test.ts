// Baselines from deployment outcomes delivered out of order across partitions, through the
// real Kafka protocol and the configuration service's gRPC API: the live baseline equals one
// rebuilt by a new service (empty database, new consumer group) and names the newest outcome;
// a rollback removes what the failed deployment added (of its artifacts' names, when it names
// them); an unknown event type is skipped.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { mintDevToken } from "@rdm/auth";
import { createGrpcClient, type GrpcClient } from "@rdm/grpc";
import { type CloudEvent, createKafka, createProducer, DEPLOYMENT_EVENTS_TOPIC, toKafkaMessage } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { EnvironmentHealth } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type { RunningService } from "@rdm/runtime";
import { createTestDatabase, testKafkaBrokers, testTopicPrefix, uniqueId, waitFor } from "@rdm/testkit";
import type { Producer } from "kafkajs";
import pg from "pg";
import { startConfigurationService } from "../src/index.js";

const secret = randomUUID() + randomUUID();
const topicPrefix = testTopicPrefix("baseline-order");
const topic = `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`;
const cleanups: (() => Promise<unknown>)[] = [];
let brokers: string[];
let producer: Producer;

type ConfigurationClient = GrpcClient<(typeof ConfigurationService)["method"]>;

/** A configuration service on a database and consumer group of its own, and a client for it. */
async function startService(name: string): Promise<{ client: ConfigurationClient; databaseUrl: string }> {
  const db = await createTestDatabase(name);
  cleanups.push(db.drop);
  const service: RunningService = await startConfigurationService({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: brokers.join(","),
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    CONFIGURATION_CONSUMER_GROUP: uniqueId("configuration-baselines"),
    CONFIGURATION_CONSUMER_SESSION_TIMEOUT_MS: "6000",
  });
  cleanups.push(() => service.stop());
  const token = await mintDevToken({
    subject: "viewer",
    roles: ["viewer"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });
  const client = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token });
  cleanups.push(async () => client.close());
  return { client, databaseUrl: db.url };
}

beforeAll(async () => {
  brokers = await testKafkaBrokers();
  producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("deployer"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
  cleanups.push(() => producer.disconnect());
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

type OutcomeSchema =
  | typeof DeploymentSucceededSchema
  | typeof DeploymentFailedSchema
  | typeof DeploymentRolledBackSchema;

/** A deployment outcome as the deployment service publishes it, with its environment sequence. */
function outcome(
  schema: OutcomeSchema,
  environment: string,
  environmentSequence: number,
  deploymentId: string,
  artifacts: { name: string; version: string; targetCiIds: string[]; artifactId?: string }[],
  restoredArtifactNames: string[] = [],
) {
  const id = randomUUID();
  const occurredAt = new Date(Date.UTC(2026, 10, 1, 12, environmentSequence));
  const message = create(schema as typeof DeploymentFailedSchema, {
    metadata: create(EventMetadataSchema, {
      eventId: id,
      actor: "deployer-bot",
      occurredAt: timestampFromDate(occurredAt),
      streamId: deploymentId,
      streamVersion: 1n,
    }),
    deploymentId,
    releaseId: randomUUID(),
    environment,
    artifacts,
    environmentSequence: BigInt(environmentSequence),
    ...(schema === DeploymentRolledBackSchema ? { restoredArtifactNames } : {}),
  });
  return {
    id,
    type: schema.typeName,
    source: "rdm/deployment",
    subject: deploymentId,
    time: new Date(),
    data: toBinary(schema as typeof DeploymentFailedSchema, message),
  };
}

/** Publishes each event to the partition given, so the order across partitions is the test's. */
async function publishTo(placed: [CloudEvent, number][]) {
  await producer.send({
    topic,
    acks: -1,
    messages: placed.map(([event, partition]) => ({ ...toKafkaMessage(event), partition })),
  });
}

const baselineAt = (client: ConfigurationClient, environment: string, version: bigint) =>
  waitFor(
    async () => {
      const { baseline } = await client.getBaseline({ environment });
      return baseline && baseline.version >= version ? baseline : undefined;
    },
    { timeoutMs: 30_000, description: `the baseline of ${environment} at version ${version}` },
  );

const running = (baseline: { entries: { ciId: string; artifactName: string; artifactVersion: string }[] }) =>
  baseline.entries.map((e) => `${e.ciId}/${e.artifactName}@${e.artifactVersion}`);

test("two environments' outcomes interleaved and out of order across partitions: live equals rebuilt, both name the newest", async () => {
  const { client: live, databaseUrl } = await startService("configuration_order_live");
  const [blue, green] = [uniqueId("blue"), uniqueId("green")];
  const [api, worker, sidecar] = [uniqueId("api"), uniqueId("worker"), uniqueId("sidecar")];
  const [blueHost1, blueHost2, greenHost] = [uniqueId("host"), uniqueId("host"), uniqueId("host")];
  const blueDeployments = [uniqueId("dep"), uniqueId("dep"), uniqueId("dep")];
  const greenFirst = uniqueId("dep");
  const greenFailed = uniqueId("dep");

  // blue: api 1.0 (1), worker 1.0 on another host (2), api 2.0 (3).
  const blue1 = outcome(DeploymentSucceededSchema, blue, 1, blueDeployments[0] as string, [
    { name: api, version: "1.0.0", targetCiIds: [blueHost1] },
  ]);
  const blue2 = outcome(DeploymentSucceededSchema, blue, 2, blueDeployments[1] as string, [
    { name: worker, version: "1.0.0", targetCiIds: [blueHost2] },
  ]);
  const blue3 = outcome(DeploymentSucceededSchema, blue, 3, blueDeployments[2] as string, [
    { name: api, version: "2.0.0", targetCiIds: [blueHost1] },
  ]);
  // green: api 1.0 (1), api 2.0 + a new sidecar fails (2), rolled back to api 1.0 (3).
  const green1 = outcome(DeploymentSucceededSchema, green, 1, greenFirst, [
    { name: api, version: "1.0.0", targetCiIds: [greenHost] },
  ]);
  const green2 = outcome(DeploymentFailedSchema, green, 2, greenFailed, [
    { name: api, version: "2.0.0", targetCiIds: [greenHost] },
    { name: sidecar, version: "0.1.0", targetCiIds: [greenHost] },
  ]);
  const green3 = outcome(DeploymentRolledBackSchema, green, 3, greenFailed, [
    { name: api, version: "1.0.0", targetCiIds: [greenHost] },
  ]);

  // A type of this topic the service does not know yet (the deployment service adds types).
  const unknown = {
    ...blue3,
    id: randomUUID(),
    type: "rdm.deployment.v1.DeploymentPlanCreated",
    data: new Uint8Array([1, 2, 3]),
  };
  // The newest of each environment first, and applied, before anything older arrives.
  await publishTo([
    [unknown, 0],
    [blue3, 0],
    [green3, 1],
  ]);
  await baselineAt(live, blue, 1n);
  await baselineAt(live, green, 1n);
  // Then the older ones, interleaved over the four partitions.
  await publishTo([
    [green2, 2],
    [blue1, 3],
    [blue2, 1],
    [green1, 0],
  ]);
  const liveBlue = await baselineAt(live, blue, 3n);
  const liveGreen = await baselineAt(live, green, 3n);

  expect(running(liveBlue)).toEqual([`${blueHost1}/${api}@2.0.0`, `${blueHost2}/${worker}@1.0.0`].sort());
  expect(liveBlue).toMatchObject({
    lastDeploymentId: blueDeployments[2],
    lastKnownGoodDeploymentId: blueDeployments[2],
    health: EnvironmentHealth.HEALTHY,
  });
  // The rollback is the newest: the failure arriving after it neither degrades nor adds the sidecar.
  expect(running(liveGreen)).toEqual([`${greenHost}/${api}@1.0.0`]);
  expect(liveGreen).toMatchObject({
    lastDeploymentId: greenFailed,
    lastKnownGoodDeploymentId: greenFirst,
    health: EnvironmentHealth.HEALTHY,
  });

  // The unknown type ahead of blue's newest outcome was handled (skipped), not dead-lettered.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const handled = await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [unknown.id]);
  await db.end();
  expect(handled.rowCount).toBe(1);

  // Replay: a new service reads the topic from the beginning, in whatever interleaving it gets.
  const { client: rebuilt } = await startService("configuration_order_rebuilt");
  expect(await baselineAt(rebuilt, blue, 3n)).toEqual(liveBlue);
  expect(await baselineAt(rebuilt, green, 3n)).toEqual(liveGreen);
}, 120_000);

test("a rollback restores exactly: what the failed deployment added is removed", async () => {
  const { client } = await startService("configuration_rollback");
  const environment = uniqueId("staging");
  const [api, cache] = [uniqueId("api"), uniqueId("cache")];
  const [host1, host2] = [uniqueId("host"), uniqueId("host")];
  const good = uniqueId("dep");
  const bad = uniqueId("dep");
  await publishTo([
    [
      outcome(DeploymentSucceededSchema, environment, 1, good, [{ name: api, version: "1.0.0", targetCiIds: [host1] }]),
      0,
    ],
  ]);
  await baselineAt(client, environment, 1n);
  await publishTo([
    [
      outcome(DeploymentFailedSchema, environment, 2, bad, [
        { name: api, version: "1.1.0", targetCiIds: [host1, host2] },
        { name: cache, version: "5.0.0", targetCiIds: [host2] },
      ]),
      1,
    ],
  ]);
  const degraded = await baselineAt(client, environment, 2n);
  expect(degraded.health).toBe(EnvironmentHealth.DEGRADED);
  expect(running(degraded)).toHaveLength(3);

  await publishTo([
    [
      outcome(DeploymentRolledBackSchema, environment, 3, bad, [{ name: api, version: "1.0.0", targetCiIds: [host1] }]),
      1,
    ],
  ]);
  const restored = await baselineAt(client, environment, 3n);
  expect(running(restored)).toEqual([`${host1}/${api}@1.0.0`]);
  expect(restored).toMatchObject({ health: EnvironmentHealth.HEALTHY, lastKnownGoodDeploymentId: good });

  // A rollback that names its artifacts restores those only: the worker deployed before stays.
  const [worker, later] = [uniqueId("worker"), uniqueId("dep")];
  await publishTo([
    [
      outcome(DeploymentSucceededSchema, environment, 4, uniqueId("dep"), [
        { name: worker, version: "3.0.0", targetCiIds: [host2] },
      ]),
      0,
    ],
    [
      outcome(DeploymentFailedSchema, environment, 5, later, [
        { name: api, version: "1.2.0", targetCiIds: [host1, host2] },
      ]),
      1,
    ],
    [
      outcome(
        DeploymentRolledBackSchema,
        environment,
        6,
        later,
        [{ name: api, version: "1.0.0", targetCiIds: [host1] }],
        [api],
      ),
      1,
    ],
  ]);
  const scoped = await baselineAt(client, environment, 6n);
  expect(running(scoped).sort()).toEqual([`${host1}/${api}@1.0.0`, `${host2}/${worker}@3.0.0`].sort());
}, 90_000);

test("a deployment with more artifact-target pairs than an event holds as entries is recorded whole", async () => {
  const { client } = await startService("configuration_wide");
  const environment = uniqueId("fleet");
  // 20 artifacts on 300 hosts: 6,000 pairs, about 720 KB as an entry each, more than an event may be.
  const hosts = Array.from({ length: 300 }, () => `ci-${randomUUID()}`);
  const artifacts = Array.from({ length: 20 }, (_, i) => ({
    artifactId: `artifact-${randomUUID()}`,
    name: `component-${i}`,
    version: "2.4.1",
    targetCiIds: hosts,
  }));
  const wide = uniqueId("dep");
  await publishTo([[outcome(DeploymentSucceededSchema, environment, 1, wide, artifacts), 0]]);
  const baseline = await baselineAt(client, environment, 1n);
  expect(baseline.entries).toHaveLength(6000);
  expect(baseline.lastKnownGood).toHaveLength(6000);
  expect(baseline.entries[0]).toMatchObject({ deploymentId: wide, artifactVersion: "2.4.1" });
  const expected = artifacts.flatMap((a) => hosts.map((h) => `${h}/${a.name}@2.4.1`)).sort();
  expect([...running(baseline)].sort()).toEqual(expected);
  // Every entry keeps its artifact's DML id.
  const ids = new Map(artifacts.map((a) => [a.name, a.artifactId]));
  expect(baseline.entries.every((e) => e.artifactId === ids.get(e.artifactName))).toBe(true);

  // In pages: entries, then the last known good, as one list of 12,000 rows.
  const pages = await allPages(client, environment, 5000);
  expect(pages.map((p) => [p.entries.length, p.lastKnownGood.length])).toEqual([
    [5000, 0],
    [1000, 4000],
    [0, 2000],
  ]);
  expect(pages.flatMap((p) => p.entries)).toEqual(baseline.entries);
  expect(pages.flatMap((p) => p.lastKnownGood)).toEqual(baseline.lastKnownGood);
  expect(pages.every((p) => p.version === 1n && p.lastKnownGoodDeploymentId === wide)).toBe(true);

  // A deployment recorded while paging: the pages stay those of the version paging started at.
  const first = await client.getBaseline({ environment, pageSize: 5000 });
  await publishTo([
    [
      outcome(DeploymentSucceededSchema, environment, 2, uniqueId("dep"), [
        { name: "component-0", version: "2.5.0", targetCiIds: hosts },
      ]),
      0,
    ],
  ]);
  expect(running(await baselineAt(client, environment, 2n))).toContain(`${hosts[0]}/component-0@2.5.0`);
  const rest = await allPages(client, environment, 5000, first.nextPageToken);
  expect([first.baseline, ...rest].flatMap((p) => p?.entries ?? [])).toEqual(baseline.entries);
  expect(rest.every((p) => p.version === 1n)).toBe(true);

  // A token is for its environment's baseline only.
  const refused = (request: { pageToken: string; environment: string }) =>
    client.getBaseline({ ...request, pageSize: 10 }).then(
      () => "answered",
      (error: { code: number }) => error.code,
    );
  expect(await refused({ environment: uniqueId("other"), pageToken: first.nextPageToken })).toBe(
    status.INVALID_ARGUMENT,
  );
  expect(await refused({ environment, pageToken: "bm90IGEgdG9rZW4" })).toBe(status.INVALID_ARGUMENT);
}, 90_000);

/** Every page of a baseline from `pageToken` on. */
async function allPages(client: ConfigurationClient, environment: string, pageSize: number, pageToken = "") {
  const pages = [];
  do {
    const page = await client.getBaseline({ environment, pageSize, pageToken });
    if (page.baseline) pages.push(page.baseline);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return pages;
}
