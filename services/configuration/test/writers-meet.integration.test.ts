// Writers that meet on one configuration item, and what a single call or an import may record:
// a relationship and a retire of its target, an event too large for Kafka, a reference by the
// request id of a command that registered nothing, artifacts declared twice. Through gRPC on real
// PostgreSQL and Kafka.
import { createHash, randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { mintDevToken } from "@rdm/auth";
import { createGrpcClient, errorDetails, type GrpcClient } from "@rdm/grpc";
import { CiLifecycleStatus, CiType, RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ConfigurationService,
  type ImportItemSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type { RunningService } from "@rdm/runtime";
import { createTestDatabase, testKafkaBrokers, testTopicPrefix, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { startConfigurationService } from "../src/index.js";

const secret = randomUUID() + randomUUID();
let service: RunningService;
let client: GrpcClient<(typeof ConfigurationService)["method"]>;
let pool: pg.Pool;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  const db = await createTestDatabase("configuration_writers");
  dropDb = db.drop;
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  service = await startConfigurationService({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: (await testKafkaBrokers()).join(","),
    KAFKA_TOPIC_PREFIX: testTopicPrefix("configuration-writers"),
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "error",
    CONFIGURATION_CONSUMER_GROUP: uniqueId("configuration-baselines"),
  });
  const token = await mintDevToken({
    subject: "cmdb-admin",
    roles: ["config-manager"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });
  client = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await pool?.end();
  await dropDb?.();
});

const registerCi = async (name = uniqueId("ci")) =>
  (await client.registerConfigurationItem({ requestId: randomUUID(), name, type: CiType.SERVICE, owner: "team-a" }))
    .item?.ciId as string;

type ItemInit = NonNullable<MessageInitShape<typeof ImportItemSchema>["item"]>;
const importItems = async (items: ItemInit[]) =>
  (await client.importConfiguration([{ items: items.map((item) => ({ item })) }])).results;

const relationship = (source: ImportRef, target: ImportRef, requestId = randomUUID()): ItemInit => ({
  case: "addRelationship",
  value: { requestId, source: { reference: source }, type: RelationshipType.DEPENDS_ON, target: { reference: target } },
});
type ImportRef = { case: "ciId"; value: string } | { case: "registrationRequestId"; value: string };

/** Backends of this database waiting for a lock. */
const lockWaiters = async () =>
  (
    await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    )
  ).rows[0]?.n ?? 0;

describe.each([
  [
    "AddRelationship",
    (source: string, target: string) =>
      client.addRelationship({
        requestId: randomUUID(),
        sourceCiId: source,
        type: RelationshipType.DEPENDS_ON,
        targetCiId: target,
      }),
  ],
  [
    "ImportConfiguration",
    (source: string, target: string) =>
      importItems([relationship({ case: "ciId", value: source }, { case: "ciId", value: target })]),
  ],
])("%s and a retire of the target, at once", (_, add) => {
  test("the retire waits for the relationship, so no retired item gains one", async () => {
    const [source, target] = [await registerCi(), await registerCi()];
    // Hold the source's stream: the add reads its target, then waits to append.
    const blocker = await pool.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query("SELECT 1 FROM streams WHERE stream_id = $1 FOR UPDATE", [source]);
      const added = add(source, target);
      await waitFor(async () => (await lockWaiters()) >= 1, { description: "the add waiting to append" });
      const retired = client.changeConfigurationItemStatus({
        requestId: randomUUID(),
        ciId: target,
        status: CiLifecycleStatus.RETIRED,
      });
      await waitFor(async () => (await lockWaiters()) >= 2, { description: "the retire waiting for the add" });
      const meanwhile = await pool.query("SELECT status FROM configuration_items WHERE ci_id = $1", [target]);
      expect(meanwhile.rows[0]?.status).not.toBe(CiLifecycleStatus.RETIRED);
      await blocker.query("COMMIT");
      await Promise.all([added, retired]);
    } finally {
      blocker.release();
    }
    // The relationship was committed while its target was active; the retire came after it.
    const item = (await client.getConfigurationItem({ ciId: source })).item;
    expect(item?.relationships.map((r) => r.targetCiId)).toEqual([target]);
    const retiredItem = (await client.getConfigurationItem({ ciId: target })).item;
    expect(retiredItem?.status).toBe(CiLifecycleStatus.RETIRED);
  });
});

test("two imports relating the same two CIs in opposite directions at once both succeed, without a deadlock", async () => {
  const [x, y] = [await registerCi(), await registerCi()];
  // Hold both streams: each import takes its target's share lock, then waits to append; once
  // let go, each wants to update the row the other holds.
  const blocker = await pool.connect();
  let imports: Promise<Awaited<ReturnType<typeof importItems>>[]>;
  try {
    await blocker.query("BEGIN");
    await blocker.query("SELECT 1 FROM streams WHERE stream_id = ANY($1) FOR UPDATE", [[x, y]]);
    imports = Promise.all([
      importItems([relationship({ case: "ciId", value: x }, { case: "ciId", value: y })]),
      importItems([relationship({ case: "ciId", value: y }, { case: "ciId", value: x })]),
    ]);
    await waitFor(async () => (await lockWaiters()) >= 2, { description: "both imports waiting to append" });
    await blocker.query("COMMIT");
  } finally {
    blocker.release();
  }
  const results = (await imports).flat();
  expect(results.map((r) => [r.error, r.created])).toEqual([
    [undefined, true],
    [undefined, true],
  ]);
  const targets = async (ciId: string) =>
    (await client.getConfigurationItem({ ciId })).item?.relationships.map((r) => r.targetCiId);
  expect([await targets(x), await targets(y)]).toEqual([[y], [x]]);
});

test("eight imports of 1,000 relationships each hold their targets together with a bounded number of locks", async () => {
  const targets = (
    await importItems(
      Array.from({ length: 1000 }, (_, i) => ({
        case: "registerConfigurationItem" as const,
        value: { requestId: randomUUID(), name: `target-${i}`, type: CiType.SERVICE, owner: "team-a" },
      })),
    )
  ).map((result) => result.ciId);
  const sources = await Promise.all(Array.from({ length: 8 }, () => registerCi()));
  // Hold the sources' streams: every import holds its targets, then waits to append.
  const blocker = await pool.connect();
  let imports: Promise<Awaited<ReturnType<typeof importItems>>[]>;
  try {
    await blocker.query("BEGIN");
    await blocker.query("SELECT 1 FROM streams WHERE stream_id = ANY($1) FOR UPDATE", [sources]);
    imports = Promise.all(
      sources.map((source) =>
        importItems(
          targets.map((target) => relationship({ case: "ciId", value: source }, { case: "ciId", value: target })),
        ),
      ),
    );
    // Each import decides its 1,000 relationships first: on a busy machine that takes a while.
    await waitFor(async () => (await lockWaiters()) >= sources.length, {
      description: "every import holding its targets",
      timeoutMs: 60_000,
    });
    // A lock per bucket of targets, not per target: the lock table (64 per connection allowed by
    // default, shared by all) would not hold 1,000 per import for long.
    const advisory = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks
       WHERE locktype = 'advisory' AND pid IN (
         SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())`,
    );
    expect(advisory.rows[0]?.n).toBeLessThanOrEqual(sources.length * 128);
    await blocker.query("COMMIT");
  } finally {
    blocker.release();
  }
  const results = (await imports).flat();
  expect(results.filter((r) => r.error)).toEqual([]);
  expect(results).toHaveLength(8000);
}, 120_000);

test("an import item whose event would not fit a Kafka message is refused alone, as the single call is", async () => {
  const attributes: Record<string, string> = {};
  for (let i = 0; i < 200; i++) attributes[`k${String(i).padStart(99, "0")}`] = "€".repeat(2000);
  const big = { requestId: randomUUID(), name: "big", type: CiType.HOST, owner: "o", attributes };
  const single = errorDetails(await client.registerConfigurationItem(big).catch((e: unknown) => e));
  expect(single.badRequest?.fieldViolations.map((v) => [v.field, v.reason])).toEqual([
    ["attributes", "event.too_large"],
  ]);
  const small = { requestId: randomUUID(), name: uniqueId("small"), type: CiType.HOST, owner: "o" };
  const results = await importItems([
    { case: "registerConfigurationItem", value: big },
    { case: "registerConfigurationItem", value: small },
  ]);
  expect(results.map((r) => [r.created, r.error?.code ?? 0])).toEqual([
    [false, status.INVALID_ARGUMENT],
    [true, 0],
  ]);
});

test("an import reference names a CI only by the request id that registered it", async () => {
  const [x, y, z] = [await registerCi(), await registerCi(), await registerCi()];
  const addId = randomUUID();
  await client.addRelationship({ requestId: addId, sourceCiId: x, type: RelationshipType.DEPENDS_ON, targetCiId: y });
  const [byAdd] = await importItems([
    relationship({ case: "registrationRequestId", value: addId }, { case: "ciId", value: z }),
  ]);
  expect(byAdd?.error?.code).toBe(status.NOT_FOUND);
  const registrationId = randomUUID();
  const w = (
    await client.registerConfigurationItem({
      requestId: registrationId,
      name: uniqueId("w"),
      type: CiType.SERVICE,
      owner: "o",
    })
  ).item?.ciId;
  const [byRegistration] = await importItems([
    relationship({ case: "registrationRequestId", value: registrationId }, { case: "ciId", value: z }),
  ]);
  expect([byRegistration?.ciId, byRegistration?.created]).toEqual([w, true]);
});

test("artifacts: one registered without a size verifies by its content; declared again differently is refused", async () => {
  const content = Buffer.from("exact content of the artifact");
  const sha256 = createHash("sha256").update(content).digest("hex");
  const name = uniqueId("pkg");
  const registration = { name, version: "1.0.0+build.7", sha256, mediaUri: "file:///pkg.tgz" };
  const { artifact } = await client.registerArtifact({ requestId: randomUUID(), ...registration });
  const { result } = await client.verifyArtifactContent([
    { requestId: randomUUID(), artifactId: artifact?.artifactId as string, chunk: content },
  ]);
  expect(result?.matches).toBe(true);
  expect((await client.registerArtifact({ requestId: randomUUID(), ...registration })).created).toBe(false);
  const differently = errorDetails(
    await client
      .registerArtifact({ requestId: randomUUID(), ...registration, sizeBytes: 999n })
      .catch((e: unknown) => e),
  );
  expect(differently.code).toBe(status.ALREADY_EXISTS);
  expect(differently.message).toContain("size");
});
