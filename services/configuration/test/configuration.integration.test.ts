// The configuration service through its public interfaces: gRPC on a real PostgreSQL, and
// deployment events published on the real Kafka protocol.
import { createHash, randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { mintDevToken } from "@rdm/auth";
import { rebuildQueryTables } from "@rdm/command-handler";
import { createGrpcClient, errorDetails, type GrpcClient } from "@rdm/grpc";
import { createKafka, createProducer, DEPLOYMENT_EVENTS_TOPIC, publishEvents } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  ArtifactStatus,
  CiLifecycleStatus,
  CiType,
  EnvironmentHealth,
  IntegrityStatus,
  RelationshipType,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ConfigurationService,
  ConsistencyProblemKind,
  ImpactPathDetail,
  ListArtifactsRequestSchema,
  ListConfigurationItemsRequestSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { encodePageToken, pageTokenScope, type RunningService } from "@rdm/runtime";
import {
  createTestDatabase,
  repeatWhilePending,
  runBuiltCommand,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
  waitFor,
} from "@rdm/testkit";
import type { Producer } from "kafkajs";
import { startConfigurationService } from "../src/index.js";
import { configurationQueryTables } from "../src/store/query-tables.js";

const secret = randomUUID() + randomUUID();
let service: RunningService;
let client: GrpcClient<(typeof ConfigurationService)["method"]>;
let producer: Producer;
let dropDb: () => Promise<void>;
let databaseUrl: string;
// Topics of this file's own: the service reads only the deployment events published here.
const topicPrefix = testTopicPrefix("configuration-it");

beforeAll(async () => {
  const brokers = await testKafkaBrokers();
  const db = await createTestDatabase("configuration");
  dropDb = db.drop;
  databaseUrl = db.url;
  service = await startConfigurationService({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: brokers.join(","),
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    CONFIGURATION_CONSUMER_GROUP: uniqueId("configuration-baselines"),
    CONFIGURATION_CONSUMER_SESSION_TIMEOUT_MS: "6000",
  });
  const token = await mintDevToken({
    subject: "cmdb-admin",
    roles: ["config-manager", "deployer"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });
  client = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token });
  producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("deployer"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
});

afterAll(async () => {
  client?.close();
  await producer?.disconnect();
  await service?.stop();
  await dropDb?.();
});

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return errorDetails(error);
  }
  throw new Error("expected the call to fail");
}

const registerCi = async (name: string, type = CiType.SERVICE, attributes: Record<string, string> = {}) => {
  const { item } = await client.registerConfigurationItem({
    requestId: randomUUID(),
    name,
    type,
    owner: "team-a",
    attributes,
  });
  if (!item) throw new Error("no item");
  return item;
};
const relate = (source: string, type: RelationshipType, target: string) =>
  client.addRelationship({ requestId: randomUUID(), sourceCiId: source, type, targetCiId: target });

test("GetConfigurationItem as of a past time folds the history up to that time", async () => {
  const created = await registerCi(uniqueId("orders-api"), CiType.SERVICE, { tier: "gold" });
  const t1 = created.updatedAt;
  if (!t1) throw new Error("no timestamp");
  // The next change must carry a later timestamp than t1 (clock resolution is 1 ms).
  const t1ms = Number(t1.seconds) * 1000 + Math.floor(t1.nanos / 1e6);
  await waitFor(async () => Date.now() > t1ms + 1, { timeoutMs: 1000, description: "the clock to move past t1" });

  const updated = await client.updateConfigurationItem({
    requestId: randomUUID(),
    ciId: created.ciId,
    owner: "team-b",
    setAttributes: { tier: "platinum", region: "eu" },
  });
  expect(updated.item).toMatchObject({ owner: "team-b", version: 2n, attributes: { tier: "platinum", region: "eu" } });
  await client.changeConfigurationItemStatus({
    requestId: randomUUID(),
    ciId: created.ciId,
    status: CiLifecycleStatus.MAINTENANCE,
  });

  const past = await client.getConfigurationItem({ ciId: created.ciId, asOf: t1 });
  expect(past.item).toMatchObject({
    owner: "team-a",
    version: 1n,
    status: CiLifecycleStatus.LIVE,
    attributes: { tier: "gold" },
  });
  const now = await client.getConfigurationItem({ ciId: created.ciId });
  expect(now.item).toMatchObject({ owner: "team-b", version: 3n, status: CiLifecycleStatus.MAINTENANCE });

  const before = await failure(
    client.getConfigurationItem({ ciId: created.ciId, asOf: timestampFromDate(new Date(t1ms - 60_000)) }),
  );
  expect(before.code).toBe(status.NOT_FOUND);

  const history = await client.getConfigurationItemHistory({ ciId: created.ciId });
  expect(history.changes.map((c) => [c.version, c.eventType.split(".").pop(), c.actor])).toEqual([
    [1n, "ConfigurationItemRegistered", "cmdb-admin"],
    [2n, "ConfigurationItemUpdated", "cmdb-admin"],
    [3n, "ConfigurationItemStatusChanged", "cmdb-admin"],
  ]);
  const listed = await client.listConfigurationItems({ nameContains: created.name, owner: "team-b" });
  expect(listed.items.map((i) => i.ciId)).toEqual([created.ciId]);
});

test("impact analysis on a generated graph with cycles: correct set, shortest depth and a valid path", async () => {
  // A seeded random graph: 60 CIs, 150 relationships, with cycles (and a deliberate 3-cycle).
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const prefix = uniqueId("g");
  const cis = [];
  for (let i = 0; i < 60; i++)
    cis.push(
      await registerCi(`${prefix}-${String(i).padStart(2, "0")}`, i < 5 ? CiType.BUSINESS_SERVICE : CiType.COMPONENT),
    );
  const ids = cis.map((c) => c.ciId);
  const edges = new Set<string>();
  const add = (s: number, t: number, type: RelationshipType) => edges.add(`${s}|${type}|${t}`);
  add(10, 11, RelationshipType.DEPENDS_ON);
  add(11, 12, RelationshipType.DEPENDS_ON);
  add(12, 10, RelationshipType.CONNECTS_TO);
  while (edges.size < 150) {
    const s = Math.floor(random() * 60);
    const t = Math.floor(random() * 60);
    if (s !== t) add(s, t, 1 + Math.floor(random() * 4));
  }
  const parsed = [...edges].map((e) => e.split("|").map(Number) as [number, number, number]);
  await Promise.all(parsed.map(([s, type, t]) => relate(ids[s] as string, type, ids[t] as string)));

  // Expected, computed independently here: a failure spreads from target to source, except
  // for PART_OF, where it spreads from the part (source) to the whole (target).
  const hops = parsed.map(([s, type, t]) =>
    type === RelationshipType.PART_OF ? { cause: s, affected: t, type } : { cause: t, affected: s, type },
  );
  const root = 12;
  const depth = new Map<number, number>([[root, 0]]);
  let frontier = [root];
  while (frontier.length) {
    const next: number[] = [];
    for (const cause of frontier)
      for (const hop of hops)
        if (hop.cause === cause && !depth.has(hop.affected)) {
          depth.set(hop.affected, (depth.get(cause) ?? 0) + 1);
          next.push(hop.affected);
        }
    frontier = next;
  }
  depth.delete(root);

  const result = await client.analyzeImpact({ ciId: ids[root] as string });
  expect(new Set(result.impacted.map((i) => i.ciId))).toEqual(new Set([...depth.keys()].map((i) => ids[i])));
  const hopSet = new Set(hops.map((h) => `${ids[h.cause]}|${h.type}|${ids[h.affected]}`));
  for (const impacted of result.impacted) {
    const index = ids.indexOf(impacted.ciId);
    expect(impacted.depth).toBe(depth.get(index));
    expect(impacted.path).toHaveLength(impacted.depth + 1);
    expect(impacted.path[0]).toBe(ids[root]);
    expect(impacted.path.at(-1)).toBe(impacted.ciId);
    // Each hop is a real relationship, walked in the direction a failure spreads.
    impacted.path.slice(1).forEach((ci, hop) => {
      expect(hopSet.has(`${impacted.path[hop]}|${impacted.pathRelationships[hop]}|${ci}`)).toBe(true);
    });
  }
  // The cycle 10 -> 11 -> 12 -> 10 is walked once: 11 is reached, and so is 10 (via 11).
  expect(result.impacted.map((i) => i.ciId)).toEqual(expect.arrayContaining([ids[11], ids[10]]));
  expect(result.impactedBusinessServiceIds.every((id) => ids.indexOf(id) < 5)).toBe(true);

  const shallow = await client.analyzeImpact({ ciId: ids[root] as string, maxDepth: 1 });
  expect(shallow.impacted.every((i) => i.depth === 1)).toBe(true);
  expect(shallow.impacted.length).toBe([...depth.values()].filter((d) => d === 1).length);

  // Relationships: listed both ways; self-reference refused; removal updates the walk.
  const listed = await client.listRelationships({ ciId: ids[11] as string });
  expect(listed.outgoing).toEqual(expect.arrayContaining([expect.objectContaining({ targetCiId: ids[12] })]));
  expect(listed.incoming).toEqual(expect.arrayContaining([expect.objectContaining({ sourceCiId: ids[10] })]));
  expect((await failure(relate(ids[1] as string, RelationshipType.DEPENDS_ON, ids[1] as string))).code).toBe(
    status.FAILED_PRECONDITION,
  );
});

test("a two-node cycle and a self-contained cycle terminate with each CI once", async () => {
  const a = await registerCi(uniqueId("a"));
  const b = await registerCi(uniqueId("b"));
  const c = await registerCi(uniqueId("c"));
  await relate(a.ciId, RelationshipType.DEPENDS_ON, b.ciId);
  await relate(b.ciId, RelationshipType.CONNECTS_TO, a.ciId);
  await relate(c.ciId, RelationshipType.RUNS_ON, b.ciId);
  // Re-adding is idempotent: no second event.
  const again = await relate(a.ciId, RelationshipType.DEPENDS_ON, b.ciId);
  expect(again.source?.version).toBe(2n);
  const impact = await client.analyzeImpact({ ciId: a.ciId });
  expect(impact.impacted.map((i) => [i.ciId, i.depth, i.path])).toEqual([
    [b.ciId, 1, [a.ciId, b.ciId]],
    [c.ciId, 2, [a.ciId, b.ciId, c.ciId]],
  ]);
  // Parent pointers instead of whole paths, when asked for.
  const parents = await client.analyzeImpact({ ciId: a.ciId, pathDetail: ImpactPathDetail.PARENT });
  expect(parents.impacted.map((i) => [i.ciId, i.depth, i.parentCiId, i.parentRelationship, i.path])).toEqual([
    [b.ciId, 1, a.ciId, RelationshipType.CONNECTS_TO, []],
    [c.ciId, 2, b.ciId, RelationshipType.RUNS_ON, []],
  ]);
  const onlyDependsOn = await client.analyzeImpact({ ciId: b.ciId, relationshipTypes: [RelationshipType.DEPENDS_ON] });
  expect(onlyDependsOn.impacted.map((i) => i.ciId)).toEqual([a.ciId]);
  await client.removeRelationship({
    requestId: randomUUID(),
    sourceCiId: c.ciId,
    type: RelationshipType.RUNS_ON,
    targetCiId: b.ciId,
  });
  expect((await client.analyzeImpact({ ciId: a.ciId })).impacted.map((i) => i.ciId)).toEqual([b.ciId]);
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const registerArtifact = (name: string, version: string, content: Uint8Array, deps: Record<string, string> = {}) =>
  client.registerArtifact({
    requestId: randomUUID(),
    name,
    version,
    sha256: sha256(content),
    sizeBytes: BigInt(content.length),
    mediaUri: `s3://dml/${name}-${version}.tgz`,
    dependencies: Object.entries(deps).map(([n, versionRange]) => ({ name: n, versionRange })),
  });

test("DML immutability: the same checksum again is idempotent, another checksum is refused", async () => {
  const name = uniqueId("orders-api");
  const content = Buffer.from("release 1.0.0 bits");
  const first = await registerArtifact(name, "1.0.0", content);
  expect(first.created).toBe(true);
  expect(first.artifact).toMatchObject({ status: ArtifactStatus.ACTIVE, integrity: IntegrityStatus.UNVERIFIED });

  const again = await registerArtifact(name, "1.0.0", content);
  expect(again.created).toBe(false);
  expect(again.artifact?.artifactId).toBe(first.artifact?.artifactId);

  const tampered = await failure(registerArtifact(name, "1.0.0", Buffer.from("other bits")));
  expect(tampered.code).toBe(status.ALREADY_EXISTS);
  expect(tampered.message).toContain("dml.immutable_version");

  // Concurrent registrations of one new version: one stream, every caller gets it.
  const racing = await Promise.all(Array.from({ length: 5 }, () => registerArtifact(name, "1.1.0", content)));
  expect(new Set(racing.map((r) => r.artifact?.artifactId)).size).toBe(1);
  expect(racing.filter((r) => r.created)).toHaveLength(1);

  expect((await failure(registerArtifact(name, "1.2", content))).code).toBe(status.INVALID_ARGUMENT);
  const listed = await client.listArtifacts({ name });
  expect(listed.artifacts.map((a) => a.version).sort()).toEqual(["1.0.0", "1.1.0"]);
});

test("an executor reads the artifacts and target CIs its step names, and nothing else", async () => {
  const { artifact } = await registerArtifact(uniqueId("billing"), "2.0.0", Buffer.from("billing 2.0.0"));
  const item = await registerCi(uniqueId("host"), CiType.HOST, { address: "10.0.0.7" });
  const token = await mintDevToken({
    subject: "agent-1",
    roles: ["executor"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });
  const executor = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token });
  try {
    const read = await executor.getArtifact({ artifactId: artifact?.artifactId as string });
    expect([read.artifact?.mediaUri, read.artifact?.sha256]).toEqual([artifact?.mediaUri, artifact?.sha256]);
    expect((await executor.getConfigurationItem({ ciId: item.ciId })).item?.attributes).toEqual({
      address: "10.0.0.7",
    });
    expect((await failure(executor.listArtifacts({}))).code).toBe(status.PERMISSION_DENIED);
    expect((await failure(executor.quarantineArtifact({ requestId: randomUUID(), artifactId: "x" }))).code).toBe(
      status.PERMISSION_DENIED,
    );
  } finally {
    executor.close();
  }
});

test("VerifyArtifactContent hashes streamed bytes; a mismatch quarantines the artifact", async () => {
  const name = uniqueId("payments-ui");
  const content = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  const { artifact } = await registerArtifact(name, "2.0.0", content);
  const artifactId = artifact?.artifactId as string;
  const chunks = function* (bytes: Buffer, requestId: string = randomUUID()) {
    for (let offset = 0; offset < bytes.length; offset += 512 * 1024)
      yield {
        requestId: offset === 0 ? requestId : "",
        artifactId: offset === 0 ? artifactId : "",
        chunk: bytes.subarray(offset, offset + 512 * 1024),
      };
  };

  const requestId = randomUUID();
  const good = await client.verifyArtifactContent(chunks(content, requestId));
  expect(good.result).toMatchObject({ matches: true, actualSizeBytes: BigInt(content.length) });
  expect(good.result?.artifact?.integrity).toBe(IntegrityStatus.VERIFIED);
  // The same request id in capitals is the same request: the first answer, nothing recorded again.
  expect(await client.verifyArtifactContent(chunks(content, requestId.toUpperCase()))).toEqual(good);

  const corrupted = Buffer.from(content);
  corrupted[1000] = 8;
  const bad = await client.verifyArtifactContent(chunks(corrupted));
  expect(bad.result).toMatchObject({
    matches: false,
    expectedSha256: sha256(content),
    actualSha256: sha256(corrupted),
  });
  const quarantined = (await client.getArtifact({ artifactId })).artifact;
  expect(quarantined).toMatchObject({ status: ArtifactStatus.QUARANTINED, integrity: IntegrityStatus.MISMATCH });
  expect(quarantined?.statusReason).toContain(sha256(corrupted));

  // A reported digest is checked the same way.
  const other = (await registerArtifact(uniqueId("batch"), "1.0.0", Buffer.from("x"))).artifact?.artifactId as string;
  const digestOk = await client.verifyArtifact({
    requestId: randomUUID(),
    artifactId: other,
    sha256: sha256(Buffer.from("x")),
  });
  expect(digestOk.result?.matches).toBe(true);
  const digestBad = await client.verifyArtifact({ requestId: randomUUID(), artifactId: other, sha256: "0".repeat(64) });
  expect(digestBad.result?.artifact?.status).toBe(ArtifactStatus.QUARANTINED);

  // Retire; a stream without a first message naming the artifact is refused.
  const retired = await client.retireArtifact({ requestId: randomUUID(), artifactId: other, reason: "superseded" });
  expect(retired.artifact?.status).toBe(ArtifactStatus.RETIRED);
  expect((await failure(client.verifyArtifactContent([{ chunk: Buffer.from("x") }]))).code).toBe(
    status.INVALID_ARGUMENT,
  );
});

function deploymentEvent(
  schema: typeof DeploymentSucceededSchema | typeof DeploymentFailedSchema | typeof DeploymentRolledBackSchema,
  fields: {
    deploymentId: string;
    environment: string;
    artifacts: { name: string; version: string; targetCiIds: string[] }[];
    reason?: string;
  },
  /** When the deployment happened (absent: the event does not say) and when it was published. */
  at: { occurredAt?: Date; time: Date } = { occurredAt: new Date(), time: new Date() },
) {
  const id = randomUUID();
  const message = create(schema as typeof DeploymentFailedSchema, {
    metadata: create(EventMetadataSchema, {
      eventId: id,
      actor: "deployer-bot",
      streamId: fields.deploymentId,
      streamVersion: 1n,
      ...(at.occurredAt ? { occurredAt: timestampFromDate(at.occurredAt) } : {}),
    }),
    releaseId: randomUUID(),
    ...fields,
  });
  return {
    id,
    type: schema.typeName,
    source: "rdm/deployment",
    subject: fields.deploymentId,
    time: at.time,
    data: toBinary(schema as typeof DeploymentFailedSchema, message),
  };
}

test("baselines follow deployment events (last known good survives a failure); consistency checks use them", async () => {
  const environment = uniqueId("staging");
  const host = await registerCi(uniqueId("host"), CiType.HOST);
  const lib = uniqueId("lib");
  const api = uniqueId("api");
  const lib1 = (await registerArtifact(lib, "1.4.0", Buffer.from("lib 1.4.0"))).artifact?.artifactId as string;
  await registerArtifact(lib, "2.0.0", Buffer.from("lib 2.0.0"));

  const good = deploymentEvent(DeploymentSucceededSchema, {
    deploymentId: uniqueId("dep"),
    environment,
    artifacts: [{ name: lib, version: "1.4.0", targetCiIds: [host.ciId] }],
  });
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [good]);
  const baseline = await waitFor(async () => (await client.getBaseline({ environment })).baseline, {
    timeoutMs: 30_000,
    description: "the baseline from DeploymentSucceeded",
  });
  expect(baseline.entries).toEqual([
    expect.objectContaining({ ciId: host.ciId, artifactName: lib, artifactVersion: "1.4.0", artifactId: lib1 }),
  ]);
  expect(baseline.lastKnownGoodDeploymentId).toBe(good.subject);
  expect(baseline.health).toBe(EnvironmentHealth.HEALTHY);

  const bad = deploymentEvent(DeploymentFailedSchema, {
    deploymentId: uniqueId("dep"),
    environment,
    artifacts: [{ name: lib, version: "2.0.0", targetCiIds: [host.ciId] }],
    reason: "smoke tests failed",
  });
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [bad, bad]); // delivered twice: applied once
  const degraded = await waitFor(
    async () => {
      const b = (await client.getBaseline({ environment })).baseline;
      return b?.lastDeploymentId === bad.subject ? b : undefined;
    },
    { timeoutMs: 30_000, description: "the baseline after DeploymentFailed" },
  );
  expect(degraded).toMatchObject({
    health: EnvironmentHealth.DEGRADED,
    lastKnownGoodDeploymentId: good.subject,
    version: 2n,
  });
  expect(degraded.entries[0]?.artifactVersion).toBe("2.0.0");
  expect(degraded.lastKnownGood[0]?.artifactVersion).toBe("1.4.0");

  const back = deploymentEvent(DeploymentRolledBackSchema, {
    deploymentId: bad.subject,
    environment,
    artifacts: [{ name: lib, version: "1.4.0", targetCiIds: [host.ciId] }],
    reason: "back-out to last known good",
  });
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [back]);
  const restored = await waitFor(
    async () => {
      const b = (await client.getBaseline({ environment })).baseline;
      return b?.version === 3n ? b : undefined;
    },
    { timeoutMs: 30_000, description: "the baseline after DeploymentRolledBack" },
  );
  expect(restored).toMatchObject({ health: EnvironmentHealth.HEALTHY, lastKnownGoodDeploymentId: good.subject });
  expect(restored.entries[0]?.artifactVersion).toBe("1.4.0");
  // The snapshot as of the failure is still there.
  const asOfFailure = await client.getBaseline({ environment, asOf: degraded.updatedAt });
  expect(asOfFailure.baseline?.version).toBe(2n);

  // Package consistency against the set and the environment's baseline.
  const satisfiedByBaseline = (await registerArtifact(api, "3.0.0", Buffer.from("api 3"), { [lib]: "^1.2.0" })).artifact
    ?.artifactId as string;
  const okCheck = await client.checkPackageConsistency({ artifactIds: [satisfiedByBaseline], environment });
  expect(okCheck.consistent).toBe(true);
  expect(okCheck.satisfied[0]).toMatchObject({ satisfiedBy: "baseline", satisfiedByVersion: "1.4.0" });

  const outOfRange = (await registerArtifact(api, "3.1.0", Buffer.from("api 3.1"), { [lib]: "^2.1.0" })).artifact
    ?.artifactId as string;
  const missing = (await registerArtifact(api, "3.2.0", Buffer.from("api 3.2"), { [uniqueId("queue")]: "~1.0.0" }))
    .artifact?.artifactId as string;
  const rangeCheck = await client.checkPackageConsistency({ artifactIds: [outOfRange], environment });
  expect(rangeCheck.problems).toEqual([
    expect.objectContaining({ kind: ConsistencyProblemKind.VERSION_OUT_OF_RANGE, foundVersions: ["1.4.0"] }),
  ]);
  const missingCheck = await client.checkPackageConsistency({ artifactIds: [missing], environment });
  expect(missingCheck.problems[0]?.kind).toBe(ConsistencyProblemKind.MISSING_DEPENDENCY);
  // Without the environment, only the package counts: the lib dependency is now missing.
  const alone = await client.checkPackageConsistency({ artifactIds: [satisfiedByBaseline] });
  expect(alone.problems[0]?.kind).toBe(ConsistencyProblemKind.MISSING_DEPENDENCY);
});

test("a baseline is stamped with when the deployment happened, not when it was processed", async () => {
  const environment = uniqueId("preprod");
  const host = await registerCi(uniqueId("host"), CiType.HOST);
  const lib = uniqueId("lib");
  const deployedAt = new Date("2024-01-15T10:00:00.123Z");
  const good = deploymentEvent(
    DeploymentSucceededSchema,
    {
      deploymentId: uniqueId("dep"),
      environment,
      artifacts: [{ name: lib, version: "1.0.0", targetCiIds: [host.ciId] }],
    },
    { occurredAt: deployedAt, time: new Date("2024-01-15T10:00:05Z") },
  );
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [good]);
  const baseline = await waitFor(async () => (await client.getBaseline({ environment })).baseline, {
    timeoutMs: 30_000,
    description: "the baseline from DeploymentSucceeded",
  });
  const stamped = timestampFromDate(deployedAt);
  expect(baseline.updatedAt).toEqual(stamped);
  expect(baseline.lastKnownGoodAt).toEqual(stamped);
  expect(baseline.entries[0]?.deployedAt).toEqual(stamped);
  // As of a moment after the deployment (long before it was processed), the baseline existed.
  const asOf = await client.getBaseline({ environment, asOf: timestampFromDate(new Date("2024-01-15T11:00:00Z")) });
  expect(asOf.baseline?.version).toBe(1n);

  // An event that does not say when it happened: the CloudEvent's time.
  const published = new Date("2024-01-16T08:30:00Z");
  const bad = deploymentEvent(
    DeploymentFailedSchema,
    {
      deploymentId: uniqueId("dep"),
      environment,
      artifacts: [{ name: lib, version: "1.1.0", targetCiIds: [host.ciId] }],
      reason: "smoke tests failed",
    },
    { time: published },
  );
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [bad]);
  const degraded = await waitFor(
    async () => {
      const b = (await client.getBaseline({ environment })).baseline;
      return b?.version === 2n ? b : undefined;
    },
    { timeoutMs: 30_000, description: "the baseline after DeploymentFailed" },
  );
  expect(degraded.updatedAt).toEqual(timestampFromDate(published));
  expect(degraded.lastKnownGoodAt).toEqual(stamped);
});

test("a baseline version that is not semver (CalVer) is reported by the consistency check, not an internal error", async () => {
  const environment = uniqueId("calver");
  const [hostA, hostB] = [await registerCi(uniqueId("host"), CiType.HOST), await registerCi(uniqueId("host"))];
  const lib = uniqueId("lib");
  const deployed = deploymentEvent(DeploymentSucceededSchema, {
    deploymentId: uniqueId("dep"),
    environment,
    artifacts: [
      { name: lib, version: "2024.01.15", targetCiIds: [hostA.ciId] },
      { name: lib, version: "1.4.0", targetCiIds: [hostB.ciId] },
    ],
  });
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [deployed]);
  await waitFor(async () => (await client.getBaseline({ environment })).baseline, {
    timeoutMs: 30_000,
    description: "the baseline from DeploymentSucceeded",
  });
  const api = (await registerArtifact(uniqueId("api"), "1.0.0", Buffer.from("api"), { [lib]: "^2.0.0" })).artifact
    ?.artifactId as string;
  const check = await client.checkPackageConsistency({ artifactIds: [api], environment });
  expect(check.problems).toEqual([
    expect.objectContaining({
      kind: ConsistencyProblemKind.VERSION_OUT_OF_RANGE,
      foundVersions: ["1.4.0", "2024.01.15"],
      description: expect.stringContaining("not a semantic version"),
    }),
  ]);
});

test("a no-op command records its request id: a retry answers as the first time, reuse for another request is refused", async () => {
  const { ciId } = await registerCi(uniqueId("billing-api"));
  const requestId = randomUUID();
  // Already LIVE: nothing to record, but the answer is the request id's.
  const first = await client.changeConfigurationItemStatus({ requestId, ciId, status: CiLifecycleStatus.LIVE });
  expect(first.item).toMatchObject({ status: CiLifecycleStatus.LIVE, version: 1n });
  await client.changeConfigurationItemStatus({ requestId: randomUUID(), ciId, status: CiLifecycleStatus.MAINTENANCE });

  const retry = await client.changeConfigurationItemStatus({ requestId, ciId, status: CiLifecycleStatus.LIVE });
  expect(retry).toEqual(first);
  const reused = await failure(
    client.changeConfigurationItemStatus({ requestId, ciId, status: CiLifecycleStatus.RETIRED }),
  );
  expect(reused.code).toBe(status.FAILED_PRECONDITION);
  // Neither the retry nor the reuse changed the item.
  expect((await client.getConfigurationItem({ ciId })).item).toMatchObject({
    status: CiLifecycleStatus.MAINTENANCE,
    version: 2n,
  });
});

test("an id of another kind of stream is NOT_FOUND (a CI's id as an artifact's and back); one too long is INVALID_ARGUMENT", async () => {
  const ci = await registerCi(uniqueId("search-api"));
  const artifactId = (await registerArtifact(uniqueId("search-api"), "1.0.0", Buffer.from("search"))).artifact
    ?.artifactId as string;
  const command = { requestId: randomUUID() };
  const calls: [string, () => Promise<unknown>][] = [
    ["GetConfigurationItem", () => client.getConfigurationItem({ ciId: artifactId })],
    [
      "GetConfigurationItem as of now",
      () => client.getConfigurationItem({ ciId: artifactId, asOf: timestampFromDate(new Date()) }),
    ],
    ["GetConfigurationItemHistory", () => client.getConfigurationItemHistory({ ciId: artifactId })],
    ["UpdateConfigurationItem", () => client.updateConfigurationItem({ ...command, ciId: artifactId, name: "x" })],
    [
      "ChangeConfigurationItemStatus",
      () =>
        client.changeConfigurationItemStatus({ ...command, ciId: artifactId, status: CiLifecycleStatus.MAINTENANCE }),
    ],
    ["AddRelationship", () => relate(artifactId, RelationshipType.RUNS_ON, ci.ciId)],
    [
      "RemoveRelationship",
      () =>
        client.removeRelationship({
          ...command,
          sourceCiId: artifactId,
          type: RelationshipType.RUNS_ON,
          targetCiId: ci.ciId,
        }),
    ],
    ["QuarantineArtifact", () => client.quarantineArtifact({ ...command, artifactId: ci.ciId, reason: "x" })],
    ["RetireArtifact", () => client.retireArtifact({ ...command, artifactId: ci.ciId })],
    ["VerifyArtifact", () => client.verifyArtifact({ ...command, artifactId: ci.ciId, sha256: "0".repeat(64) })],
  ];
  for (const [name, call] of calls) expect([name, (await failure(call())).code]).toEqual([name, status.NOT_FOUND]);
  // Ids are at most 200 characters, reads' as commands' (emoji are one each): a longer one is
  // INVALID_ARGUMENT naming the field, in every read; one within is looked up. The service goes on
  // answering (cutting a message through a surrogate pair once ended the process).
  const emoji = (n: number) => `a${"\u{1F600}".repeat(n)}`;
  const reads: [string, (id: string) => Promise<unknown>][] = [
    ["GetConfigurationItem", (ciId) => client.getConfigurationItem({ ciId })],
    ["GetConfigurationItemHistory", (ciId) => client.getConfigurationItemHistory({ ciId })],
    ["ListRelationships", (ciId) => client.listRelationships({ ciId })],
    ["AnalyzeImpact", (ciId) => client.analyzeImpact({ ciId })],
    ["GetArtifact", (artifactId) => client.getArtifact({ artifactId })],
  ];
  for (const [name, read] of reads) {
    const refused = await failure(read(emoji(1_200)));
    expect([name, refused.code, refused.badRequest?.fieldViolations[0]?.field]).toEqual([
      name,
      status.INVALID_ARGUMENT,
      name === "GetArtifact" ? "artifact_id" : "ci_id",
    ]);
  }
  expect((await failure(client.getConfigurationItem({ ciId: emoji(199) }))).code).toBe(status.NOT_FOUND);
  expect((await client.getConfigurationItem({ ciId: ci.ciId })).item?.version).toBe(1n);
  expect((await client.getArtifact({ artifactId })).artifact?.versionNumber).toBe(1n);
});

test("CMDB search and paging fold case as PostgreSQL does (dotted capital I, final sigma)", async () => {
  const prefix = uniqueId("fold");
  // PostgreSQL lowers İ to i and Σ to σ; JavaScript to i + U+0307 and (word-final) ς.
  const names = [`${prefix}-İb`, `${prefix}-ic`, `${prefix}-id`, `${prefix}-ΟΔΟΣ`];
  const ids = new Map<string, string>();
  for (const name of names) ids.set(name, (await registerCi(name)).ciId);

  const paged: string[] = [];
  let pageToken = "";
  do {
    const page = await client.listConfigurationItems({ nameContains: prefix, pageSize: 1, pageToken });
    paged.push(...page.items.map((item) => item.name));
    pageToken = page.nextPageToken;
  } while (pageToken && paged.length <= names.length);
  expect(paged).toEqual(names);

  const found = async (nameContains: string) =>
    (await client.listConfigurationItems({ nameContains })).items.map((item) => item.ciId);
  expect(await found(`${prefix}-ΟΔΟΣ`)).toEqual([ids.get(`${prefix}-ΟΔΟΣ`)]);
  expect(await found(`${prefix}-İB`)).toEqual([ids.get(`${prefix}-İb`)]);
});

test("a page token pages on with the filters that made it, at any page size; other filters or lists refuse it", async () => {
  const prefix = uniqueId("scoped");
  for (const name of ["a", "b", "c", "d"]) await registerCi(`${prefix}-${name}`);
  const names = (items: { name: string }[]) => items.map((item) => item.name);
  const first = await client.listConfigurationItems({ nameContains: prefix, owner: "team-a", pageSize: 1 });
  const rest = await client.listConfigurationItems({
    nameContains: prefix,
    owner: "team-a",
    pageSize: 10,
    pageToken: first.nextPageToken,
  });
  expect(rest.nextPageToken).toBe("");
  expect([...names(first.items), ...names(rest.items)]).toEqual(["a", "b", "c", "d"].map((n) => `${prefix}-${n}`));

  const artifact = uniqueId("scoped-lib");
  await registerArtifact(artifact, "1.0.0", Buffer.from("one"));
  await registerArtifact(artifact, "1.1.0", Buffer.from("two"));
  const artifacts = await client.listArtifacts({ name: artifact, pageSize: 1 });
  const refusals = [
    client.listConfigurationItems({ nameContains: prefix, pageToken: first.nextPageToken }),
    client.listConfigurationItems({ nameContains: prefix, owner: "team-b", pageToken: first.nextPageToken }),
    client.listConfigurationItems({
      nameContains: prefix,
      owner: "team-a",
      type: CiType.DATABASE,
      pageToken: first.nextPageToken,
    }),
    client.listArtifacts({ name: artifact, status: ArtifactStatus.ACTIVE, pageToken: artifacts.nextPageToken }),
    // Another list's token: of the CMDB on the DML, and the other way round.
    client.listArtifacts({ pageToken: first.nextPageToken }),
    client.listConfigurationItems({ nameContains: prefix, owner: "team-a", pageToken: artifacts.nextPageToken }),
  ];
  for (const refused of await Promise.all(refusals.map(failure))) {
    expect([refused.code, refused.badRequest?.fieldViolations[0]]).toEqual([
      status.INVALID_ARGUMENT,
      expect.objectContaining({
        field: "page_token",
        description: "page_token does not belong to this list and filters",
      }),
    ]);
  }
});

test("forged page tokens are INVALID_ARGUMENT; the service's own still page", async () => {
  // Forged with the scope of an unfiltered list, so the parts themselves are what is checked.
  const scopes = {
    artifacts: pageTokenScope("configuration.ListArtifacts", create(ListArtifactsRequestSchema)),
    items: pageTokenScope("configuration.ListConfigurationItems", create(ListConfigurationItemsRequestSchema)),
  };
  const token = ([sortKey, id]: [string, string], scope = scopes.artifacts) => encodePageToken(scope, sortKey, id);
  const name = uniqueId("paged-lib");
  await registerArtifact(name, "1.0.0", Buffer.from("one"));
  await registerArtifact(name, "1.1.0", Buffer.from("two"));
  const first = await client.listArtifacts({ name, pageSize: 1 });
  const second = await client.listArtifacts({ name, pageSize: 1, pageToken: first.nextPageToken });
  expect([...first.artifacts, ...second.artifacts].map((a) => a.version)).toEqual(["1.1.0", "1.0.0"]);

  const id = "artifact-00000000-0000-0000-0000-000000000000";
  for (const sortKey of ["not-a-date", "2024-01-15", "0000-01-01T00:00:00.000Z", "+010000-01-01T00:00:00.000Z"]) {
    const forged = await failure(client.listArtifacts({ pageToken: token([sortKey, id]) }));
    expect([sortKey, forged.code]).toEqual([sortKey, status.INVALID_ARGUMENT]);
  }
  const nul = token(["2024-01-15T10:00:00.000Z", "artifact-\u0000"]);
  expect((await failure(client.listArtifacts({ pageToken: nul }))).code).toBe(status.INVALID_ARGUMENT);
  const nulName = token(["a\u0000", "ci-1"], scopes.items);
  expect((await failure(client.listConfigurationItems({ pageToken: nulName }))).code).toBe(status.INVALID_ARGUMENT);
  // A NUL anywhere else is refused at the API, naming the field and the character.
  const nulCalls = [
    () => client.listConfigurationItems({ owner: "team\u0000a" }),
    () => client.listArtifacts({ name: "lib\u0000" }),
  ];
  for (const call of nulCalls) {
    const refused = await failure(call());
    expect([refused.code, refused.message]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining("U+0000")]);
  }
});

/** Every row of the query tables, every column, in key order. */
async function queryTableRows() {
  const rows = async (sql: string) => (await service.context.pool.query(sql)).rows;
  return {
    items: await rows("SELECT * FROM configuration_items ORDER BY ci_id"),
    relationships: await rows("SELECT * FROM ci_relationships ORDER BY source_ci_id, type, target_ci_id"),
    artifacts: await rows("SELECT * FROM dml_artifacts ORDER BY artifact_id"),
    baselines: await rows("SELECT * FROM baselines ORDER BY environment"),
  };
}

/** AnalyzeImpact of each CI named, but for its time (as_of). */
const impactsOf = (ciIds: string[]) =>
  Promise.all(
    ciIds.map(async (ciId) => {
      const { asOf: _, ...answer } = await client.analyzeImpact({ ciId });
      return answer;
    }),
  );

// Reads every row the tests above wrote.
test("the query tables rebuilt from the event streams equal the live ones, also while commands run", async () => {
  const { pool, store } = service.context;
  const live = await queryTableRows();
  expect(live.items.length).toBeGreaterThan(60);
  expect(live.relationships.length).toBeGreaterThan(150);
  expect(Math.min(live.artifacts.length, live.baselines.length)).toBeGreaterThan(0);
  const ciIds = live.items.map((row) => row.ci_id as string);
  const impacts = await impactsOf(ciIds);
  expect(impacts.some((answer) => answer.impacted.length > 10)).toBe(true);

  const counts = await rebuildQueryTables(pool, store, configurationQueryTables);
  expect(counts).toEqual({ ci: live.items.length, artifact: live.artifacts.length, baseline: live.baselines.length });
  expect(await queryTableRows()).toEqual(live);
  expect(await impactsOf(ciIds)).toEqual(impacts);

  // The operator's command, while CIs are registered and related (among themselves) and
  // artifacts registered until it ends: each command's rows are written before the rebuild locks
  // the tables (and rebuilt from its events) or after it.
  const cli = runBuiltCommand(new URL("../dist/rebuild-main.js", import.meta.url), databaseUrl);
  const related: { source_ci_id: string; type: number; target_ci_id: string }[] = [];
  const { stdout } = await repeatWhilePending(cli, async () => {
    const [source, target] = await Promise.all([
      registerCi(uniqueId("during-rebuild")),
      registerCi(uniqueId("t")),
      registerArtifact(uniqueId("during-rebuild"), "1.0.0", Buffer.from("bits")),
    ]);
    await relate(source.ciId, RelationshipType.DEPENDS_ON, target.ciId);
    related.push({ source_ci_id: source.ciId, type: RelationshipType.DEPENDS_ON, target_ci_id: target.ciId });
  });
  expect(stdout).toMatch(
    /^configuration rebuild-tables: rebuilt dml_artifacts, baselines, configuration_items, ci_relationships from \d+ ci, \d+ artifact, \d+ baseline streams\n$/,
  );
  const after = await queryTableRows();
  expect(after.items.length).toBe(live.items.length + 2 * related.length);
  expect(after.artifacts.length).toBe(live.artifacts.length + related.length);
  expect(after.relationships).toEqual(expect.arrayContaining(related));
  expect(await impactsOf(ciIds)).toEqual(impacts);
  await rebuildQueryTables(pool, store, configurationQueryTables);
  expect(await queryTableRows()).toEqual(after);
});

test("AnalyzeImpact follows a rebuild that writes other rows than the live ones (a lost relationship restored)", async () => {
  const source = await registerCi(uniqueId("lost-source"));
  const target = await registerCi(uniqueId("lost-target"));
  await relate(source.ciId, RelationshipType.DEPENDS_ON, target.ciId);
  const impacted = async () => (await client.analyzeImpact({ ciId: target.ciId })).impacted.map((i) => i.ciId);
  expect(await impacted()).toEqual([source.ciId]);
  // The row lost behind the service's back, and the graph reading the loss: the source's next
  // change has it load the source's relationships from the table again.
  const { pool, store } = service.context;
  await pool.query("DELETE FROM ci_relationships WHERE source_ci_id = $1", [source.ciId]);
  await client.updateConfigurationItem({ requestId: randomUUID(), ciId: source.ciId, owner: "team-c" });
  expect(await impacted()).toEqual([]);

  await rebuildQueryTables(pool, store, configurationQueryTables);
  expect(await impacted()).toEqual([source.ciId]);
});
