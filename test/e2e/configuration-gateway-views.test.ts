// The gateway's CMDB, DML and baseline views, built from rdm.configuration.events.v1, match
// what the configuration service answers over gRPC.
import { createHash, randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createGrpcClient, type GrpcClient } from "@rdm/grpc";
import { createKafka, createProducer, DEPLOYMENT_EVENTS_TOPIC, publishEvents } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  ArtifactStatusSchema,
  CiLifecycleStatus,
  CiType,
  CiTypeSchema,
  EnvironmentHealthSchema,
  IntegrityStatusSchema,
  RelationshipType,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { e2eStack, type StartedGateway } from "./harness.js";

// Topics of their own: another test's configuration service on the shared broker would also
// record a baseline for this test's deployment event (in its own database, without this DML),
// and the gateway would see both services' baselines.
const stack = e2eStack("cfg-views");
const topicPrefix = stack.topicPrefix;
let client: GrpcClient<(typeof ConfigurationService)["method"]>;
let gateway: StartedGateway;
let bearer: string;
let brokers: string[];

beforeAll(async () => {
  brokers = await testKafkaBrokers();
  const service = await stack.configuration();
  gateway = await stack.gateway();
  client = createGrpcClient(ConfigurationService, service.address, {
    token: await stack.token("carol", ["config-manager", "deployer"]),
  });
  stack.onStop(() => client.close());
  bearer = await stack.token("carol", ["viewer"]);
});

afterAll(() => stack.stop());

async function get(path: string) {
  const response = await fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
  // biome-ignore lint/suspicious/noExplicitAny: the assertions below say what shape they expect
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}
const enumName = (schema: { values: { number: number; localName: string }[] }, value: number) =>
  schema.values.find((v) => v.number === value)?.localName;

test("CMDB browse, CI detail, impact, DML integrity and baseline views match the service", async () => {
  const prefix = uniqueId("shop");
  const register = async (name: string, type: CiType, owner = "team-shop") => {
    const { item } = await client.registerConfigurationItem({
      requestId: randomUUID(),
      name: `${prefix}-${name}`,
      type,
      owner,
    });
    return item?.ciId as string;
  };
  const checkout = await register("checkout", CiType.BUSINESS_SERVICE);
  const api = await register("api", CiType.SERVICE);
  const db = await register("db", CiType.DATABASE);
  const cache = await register("cache", CiType.COMPONENT);
  const host = await register("host", CiType.HOST, "team-infra");
  const relate = (s: string, type: RelationshipType, t: string) =>
    client.addRelationship({ requestId: randomUUID(), sourceCiId: s, type, targetCiId: t });
  await relate(api, RelationshipType.PART_OF, checkout);
  await relate(api, RelationshipType.DEPENDS_ON, db);
  await relate(api, RelationshipType.DEPENDS_ON, cache);
  await relate(cache, RelationshipType.CONNECTS_TO, api); // cycle api <-> cache
  await relate(db, RelationshipType.RUNS_ON, host);
  await relate(cache, RelationshipType.RUNS_ON, host);
  await client.updateConfigurationItem({ requestId: randomUUID(), ciId: db, setAttributes: { engine: "postgres" } });
  await client.changeConfigurationItemStatus({
    requestId: randomUUID(),
    ciId: cache,
    status: CiLifecycleStatus.MAINTENANCE,
  });

  const name = uniqueId("shop-api");
  const content = Buffer.from("shop api 1.0.0");
  const sha = createHash("sha256").update(content).digest("hex");
  const register1 = await client.registerArtifact({
    requestId: randomUUID(),
    name,
    version: "1.0.0",
    sha256: sha,
    sizeBytes: BigInt(content.length),
    mediaUri: "s3://dml/a",
    dependencies: [{ name: "libc", versionRange: ">=2" }],
  });
  const register2 = await client.registerArtifact({
    requestId: randomUUID(),
    name,
    version: "1.0.1",
    sha256: sha,
    sizeBytes: BigInt(content.length),
    mediaUri: "s3://dml/b",
  });
  const good = register1.artifact?.artifactId as string;
  const bad = register2.artifact?.artifactId as string;
  await client.verifyArtifactContent([{ requestId: randomUUID(), artifactId: good, chunk: content }]);
  await client.verifyArtifactContent([{ requestId: randomUUID(), artifactId: bad, chunk: Buffer.from("tampered") }]);

  const environment = uniqueId("prod");
  const eventId = randomUUID();
  const deploymentId = uniqueId("dep");
  const succeeded = create(DeploymentSucceededSchema, {
    metadata: create(EventMetadataSchema, { eventId, streamId: deploymentId, streamVersion: 1n }),
    deploymentId,
    releaseId: randomUUID(),
    environment,
    artifacts: [{ name, version: "1.0.0", targetCiIds: [host, api] }],
  });
  const producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("deployer"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    {
      id: eventId,
      type: DeploymentSucceededSchema.typeName,
      source: "rdm/deployment",
      subject: deploymentId,
      time: new Date(),
      data: toBinary(DeploymentSucceededSchema, succeeded),
    },
  ]);
  await producer.disconnect();
  const baseline = await waitFor(async () => (await client.getBaseline({ environment })).baseline, {
    timeoutMs: 30_000,
    description: "the service's baseline",
  });

  // Wait for the gateway to catch up on the last events of each stream.
  await waitFor(async () => (await get(`/v1/baselines/${environment}`)).status === 200, {
    timeoutMs: 30_000,
    description: "the gateway's baseline view",
  });
  await waitFor(async () => (await get(`/v1/dml/artifacts/${bad}`)).body.status === "QUARANTINED", {
    timeoutMs: 30_000,
    description: "the gateway's DML view",
  });
  await waitFor(async () => (await get(`/v1/cmdb/items/${cache}`)).body.item?.status === "MAINTENANCE", {
    timeoutMs: 30_000,
    description: "the gateway's CMDB view",
  });

  // Browse: same items, same order, same fields.
  // Each CI is its own stream (its own partition): wait until the gateway has every one's last event.
  const listed = await client.listConfigurationItems({ nameContains: prefix });
  const expected = listed.items.map((i) => [
    i.ciId,
    enumName(CiTypeSchema, i.type),
    CiLifecycleStatus[i.status],
    Number(i.version),
  ]);
  const browsed = async () =>
    (
      (await get(`/v1/cmdb/items?q=${prefix}`)).body.items as {
        ciId: string;
        type: string;
        status: string;
        version: number;
      }[]
    ).map((i) => [i.ciId, i.type, i.status, i.version]);
  await waitFor(async () => JSON.stringify(await browsed()) === JSON.stringify(expected), {
    timeoutMs: 30_000,
    description: "the gateway's CMDB browse at every CI's last version",
  });
  expect(await browsed()).toEqual(expected);
  const ids = async (query: string) =>
    ((await get(`/v1/cmdb/items?q=${prefix}&${query}`)).body.items as { ciId: string }[]).map((i) => i.ciId);
  expect(await ids("type=HOST")).toEqual([host]);
  expect(await ids("owner=team-infra")).toEqual([host]);
  expect(await ids("status=MAINTENANCE")).toEqual([cache]);
  expect(await ids("owner=team-shop&status=MAINTENANCE")).toEqual([cache]);

  // Detail: attributes, both relationship directions, history.
  for (const ciId of [api, db, cache]) {
    const [{ item }, relationships, history, view] = await Promise.all([
      client.getConfigurationItem({ ciId }),
      client.listRelationships({ ciId }),
      client.getConfigurationItemHistory({ ciId }),
      get(`/v1/cmdb/items/${ciId}`),
    ]);
    const body = view.body as unknown as {
      item: { attributes: Record<string, string>; version: number; owner: string };
      outgoing: { targetCiId: string; type: string }[];
      incoming: { sourceCiId: string; type: string }[];
      history: { version: number; summary: string; actor: string }[];
    };
    expect(body.item).toMatchObject({
      attributes: item?.attributes,
      version: Number(item?.version),
      owner: item?.owner,
    });
    const pairs = (rs: { sourceCiId: string; type: number | string; targetCiId: string }[]) =>
      rs
        .map((r) => `${r.sourceCiId}|${typeof r.type === "number" ? RelationshipType[r.type] : r.type}|${r.targetCiId}`)
        .sort();
    expect(pairs(body.outgoing as never)).toEqual(pairs(relationships.outgoing));
    expect(pairs(body.incoming as never)).toEqual(pairs(relationships.incoming));
    expect(body.history.map((h) => [h.version, h.summary, h.actor])).toEqual(
      history.changes.map((c) => [Number(c.version), c.summary, c.actor]),
    );
  }

  // Impact: same set, depths, paths and business services. api is two hops from host through
  // db and through cache: both sides must pick the same of the equally short paths.
  const impact = await client.analyzeImpact({ ciId: host });
  const view = (await get(`/v1/cmdb/items/${host}/impact`)).body as unknown as {
    impacted: { ciId: string; depth: number; path: string[]; pathRelationships: string[] }[];
    impactedBusinessServices: string[];
  };
  expect(view.impacted.map((i) => [i.ciId, i.depth, i.path, i.pathRelationships])).toEqual(
    impact.impacted.map((i) => [
      i.ciId,
      i.depth,
      i.path,
      i.pathRelationships.map((t) => RelationshipType[t] as string),
    ]),
  );
  expect(impact.impacted.find((i) => i.ciId === api)?.depth).toBe(2);
  expect(view.impactedBusinessServices).toEqual(impact.impactedBusinessServiceIds);
  expect(impact.impactedBusinessServiceIds).toEqual([checkout]);

  // DML: integrity status per artifact. Each artifact is its own stream (its own partition):
  // wait until the gateway lists every one at its last state.
  const artifacts = await client.listArtifacts({ name });
  const expectedDml = artifacts.artifacts.map((a) => [
    a.artifactId,
    enumName(ArtifactStatusSchema, a.status),
    enumName(IntegrityStatusSchema, a.integrity),
  ]);
  const listDml = async () =>
    (await get(`/v1/dml/artifacts?name=${name}`)).body.artifacts as unknown as {
      artifactId: string;
      status: string;
      integrity: string;
    }[];
  await waitFor(
    async () =>
      JSON.stringify((await listDml()).map((a) => [a.artifactId, a.status, a.integrity])) ===
      JSON.stringify(expectedDml),
    { timeoutMs: 30_000, description: "the gateway's DML list at every artifact's last state" },
  );
  const dml = await listDml();
  expect(dml.map((a) => [a.artifactId, a.status, a.integrity])).toEqual(expectedDml);
  // Paging one row at a time walks the same lists (the page tokens round-trip).
  const pageAll = async (path: string, field: "items" | "artifacts") => {
    const ids: string[] = [];
    let token: string | null = null;
    do {
      const page: { body: Record<string, unknown> } = await get(
        `${path}&pageSize=1${token ? `&pageToken=${token}` : ""}`,
      );
      ids.push(
        ...(page.body[field] as { ciId?: string; artifactId?: string }[]).map((r) => r.ciId ?? r.artifactId ?? ""),
      );
      token = page.body.nextPageToken as string | null;
    } while (token);
    return ids;
  };
  expect(await pageAll(`/v1/cmdb/items?q=${prefix}`, "items")).toEqual(expected.map((e) => e[0]));
  expect(await pageAll(`/v1/dml/artifacts?name=${name}`, "artifacts")).toEqual(dml.map((a) => a.artifactId));
  expect(dml.length).toBeGreaterThan(1);
  expect((await get(`/v1/dml/artifacts?pageToken=garbage`)).status).toBe(400);
  expect(dml.find((a) => a.artifactId === bad)).toMatchObject({ status: "QUARANTINED", integrity: "MISMATCH" });
  expect(dml.find((a) => a.artifactId === good)).toMatchObject({ status: "ACTIVE", integrity: "VERIFIED" });

  // What runs where.
  const where = (await get(`/v1/baselines/${environment}`)).body as unknown as {
    health: string;
    entries: {
      ciId: string;
      artifactName: string;
      artifactVersion: string;
      artifactId: string;
      deploymentId: string;
    }[];
    lastKnownGood: { ciId: string; artifactVersion: string }[];
    lastKnownGoodDeploymentId: string;
  };
  const strip = (e: {
    ciId: string;
    artifactName: string;
    artifactVersion: string;
    artifactId: string;
    deploymentId: string;
  }) => ({
    ciId: e.ciId,
    artifactName: e.artifactName,
    artifactVersion: e.artifactVersion,
    artifactId: e.artifactId,
    deploymentId: e.deploymentId,
  });
  expect(where.entries.map(strip)).toEqual(baseline.entries.map(strip));
  expect(where.lastKnownGood.map((e) => [e.ciId, e.artifactVersion])).toEqual(
    baseline.lastKnownGood.map((e) => [e.ciId, e.artifactVersion]),
  );
  expect(where.health).toBe(enumName(EnvironmentHealthSchema, baseline.health));
  expect(where.lastKnownGoodDeploymentId).toBe(deploymentId);
  expect(baseline.updatedAt && timestampDate(baseline.updatedAt)).toBeInstanceOf(Date);
}, 180_000);

test("the gateway's baseline follows environment order and exact rollbacks as the service does", async () => {
  const environment = uniqueId("canary");
  const [api, sidecar, host] = [uniqueId("api"), uniqueId("sidecar"), uniqueId("host")];
  const good = uniqueId("dep");
  const bad = uniqueId("dep");
  const outcome = (
    schema: typeof DeploymentSucceededSchema | typeof DeploymentFailedSchema | typeof DeploymentRolledBackSchema,
    environmentSequence: number,
    deploymentId: string,
    artifacts: { name: string; version: string; targetCiIds: string[] }[],
  ) => {
    const id = randomUUID();
    const message = create(schema as typeof DeploymentFailedSchema, {
      metadata: create(EventMetadataSchema, { eventId: id, streamId: deploymentId, streamVersion: 1n }),
      deploymentId,
      releaseId: randomUUID(),
      environment,
      artifacts,
      environmentSequence: BigInt(environmentSequence),
    });
    return {
      id,
      type: schema.typeName,
      source: "rdm/deployment",
      subject: deploymentId,
      time: new Date(),
      data: toBinary(schema as typeof DeploymentFailedSchema, message),
    };
  };
  const producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("deployer"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
  // The rollback (3) first, then the failure (2) it backed out and the success (1) before it.
  const v1 = [{ name: api, version: "1.0.0", targetCiIds: [host] }];
  const arrivals = [
    outcome(DeploymentRolledBackSchema, 3, bad, v1),
    outcome(DeploymentFailedSchema, 2, bad, [
      { name: api, version: "2.0.0", targetCiIds: [host] },
      { name: sidecar, version: "0.1.0", targetCiIds: [host] },
    ]),
    outcome(DeploymentSucceededSchema, 1, good, v1),
  ];
  for (const [index, event] of arrivals.entries()) {
    await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [event]);
    // Recorded before the next is published: the service records them in this order.
    await waitFor(async () => (await client.getBaseline({ environment })).baseline?.version === BigInt(index + 1), {
      timeoutMs: 30_000,
      description: `outcome ${index + 1} recorded`,
    });
  }
  const baseline = await waitFor(
    async () => {
      const b = (await client.getBaseline({ environment })).baseline;
      return b?.version === 3n ? b : undefined;
    },
    { timeoutMs: 30_000, description: "the service's baseline with all three outcomes" },
  );
  await producer.disconnect();
  expect(baseline.entries.map((e) => [e.ciId, e.artifactName, e.artifactVersion])).toEqual([[host, api, "1.0.0"]]);

  const view = await waitFor(
    async () => {
      const { status, body } = await get(`/v1/baselines/${environment}`);
      return status === 200 && body.version === 3 ? body : undefined;
    },
    { timeoutMs: 30_000, description: "the gateway's baseline with all three outcomes" },
  );
  expect(
    view.entries.map((e: { ciId: string; artifactName: string; artifactVersion: string; deploymentId: string }) => [
      e.ciId,
      e.artifactName,
      e.artifactVersion,
      e.deploymentId,
    ]),
  ).toEqual(baseline.entries.map((e) => [e.ciId, e.artifactName, e.artifactVersion, e.deploymentId]));
  expect(view).toMatchObject({
    health: enumName(EnvironmentHealthSchema, baseline.health),
    lastDeploymentId: baseline.lastDeploymentId,
    lastKnownGoodDeploymentId: baseline.lastKnownGoodDeploymentId,
  });
}, 120_000);
