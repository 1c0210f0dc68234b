// ImportConfiguration through gRPC on a real PostgreSQL, its events read back from the real
// Kafka protocol: per-item results and refusals, retries, references to items of the same
// import, and events shaped exactly as the single-item RPCs' events.
import { randomUUID } from "node:crypto";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { mintDevToken, type Role } from "@rdm/auth";
import { createGrpcClient, errorDetails, type GrpcClient } from "@rdm/grpc";
import { CONFIGURATION_EVENTS_TOPIC } from "@rdm/messaging";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
  ResourceInfoSchema,
} from "@rdm/proto/gen/google/rpc/error_details_pb.js";
import { CiType, RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ConfigurationService,
  type ImportItemResult,
  type ImportItemSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type { RunningService } from "@rdm/runtime";
import { createTestDatabase, testKafkaBrokers, testTopicPrefix, uniqueId, waitFor } from "@rdm/testkit";
import { type Consumer, Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { startConfigurationService } from "../src/index.js";
import { configurationEventRegistry } from "../src/store/event-codec.js";

type Client = GrpcClient<(typeof ConfigurationService)["method"]>;
type Item = MessageInitShape<typeof ImportItemSchema>;

const secret = randomUUID() + randomUUID();
const topicPrefix = testTopicPrefix("configuration-import");
let service: RunningService;
let client: Client;
let pool: pg.Pool;
let dropDb: () => Promise<void>;
let reader: Consumer;
/** Every event the service published, by Kafka key (the stream id), in partition order. */
const published = new Map<string, { headers: string[]; event: Record<string, unknown> }[]>();

const clientAs = async (roles: Role[]) =>
  createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, {
    token: await mintDevToken({
      subject: "discovery",
      roles,
      secret,
      issuer: "rdm",
      audience: "rdm",
      expiresIn: "10m",
    }),
  });

beforeAll(async () => {
  const brokers = await testKafkaBrokers();
  const db = await createTestDatabase("configuration_import");
  dropDb = db.drop;
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
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
  client = await clientAs(["config-manager"]);
  reader = new Kafka({ brokers, clientId: uniqueId("reader"), logLevel: logLevel.NOTHING }).consumer({
    groupId: uniqueId("reader"),
  });
  await reader.connect();
  await reader.subscribe({ topic: `${topicPrefix}${CONFIGURATION_EVENTS_TOPIC}`, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => {
      const schema = configurationEventRegistry.getMessage(String(message.headers?.ce_type ?? ""));
      if (!schema || !message.key || !message.value) return;
      const list = published.get(message.key.toString()) ?? [];
      list.push({
        headers: Object.keys(message.headers ?? {}).sort(),
        event: fromBinary(schema, message.value) as unknown as Record<string, unknown>,
      });
      published.set(message.key.toString(), list);
    },
  });
});

afterAll(async () => {
  client?.close();
  await reader?.disconnect();
  await service?.stop();
  await pool?.end();
  await dropDb?.();
});

const register = (requestId: string, name: string, type = CiType.SERVICE): Item => ({
  item: { case: "registerConfigurationItem", value: { requestId, name, type, owner: "team-a" } },
});
const byRequest = (id: string) => ({ reference: { case: "registrationRequestId" as const, value: id } });
const byId = (id: string) => ({ reference: { case: "ciId" as const, value: id } });
const relate = (
  requestId: string,
  source: ReturnType<typeof byId> | ReturnType<typeof byRequest>,
  target: ReturnType<typeof byId> | ReturnType<typeof byRequest>,
  type = RelationshipType.DEPENDS_ON,
): Item => ({ item: { case: "addRelationship", value: { requestId, source, type, target } } });

const eventCount = async () => Number((await pool.query("SELECT count(*) AS n FROM events")).rows[0].n);
/** The error's code, and its rule or field from the details. */
function refusal(result: ImportItemResult | undefined) {
  const error = result?.error;
  if (!error) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  const [detail] = error.details;
  const bad = detail && anyUnpack(detail, BadRequestSchema);
  const precondition = detail && anyUnpack(detail, PreconditionFailureSchema);
  const resource = detail && anyUnpack(detail, ResourceInfoSchema);
  return {
    code: error.code,
    fields: bad?.fieldViolations.map((v) => `${v.field}:${v.reason}`) ?? [],
    rule: precondition?.violations[0]?.type ?? "",
    resource: resource?.resourceName ?? "",
  };
}

test("mixed valid and invalid items: each invalid or refused item gets its error, the others are committed", async () => {
  const [a, b, bad, nul] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  const [ab, self, missing, again, unknownRef, noSource] = [
    randomUUID(),
    randomUUID(),
    randomUUID(),
    randomUUID(),
    randomUUID(),
    randomUUID(),
  ];
  const { results } = await client.importConfiguration([
    {
      items: [
        register(a, uniqueId("orders-api")),
        register(bad, ""),
        register(b, uniqueId("orders-db"), CiType.DATABASE),
        register(nul, "bad\u0000name"),
        { item: { case: undefined } },
        relate(ab, byRequest(a), byRequest(b)),
        relate(self, byRequest(a), byRequest(a)),
        relate(missing, byRequest(a), byId("ci-nowhere")),
        relate(again, byRequest(a), byRequest(b)),
        relate(unknownRef, byRequest(a), byRequest(randomUUID())),
        relate(noSource, byId("ci-absent-source"), byRequest(b)),
      ],
    },
  ]);
  expect(results).toHaveLength(11);
  const [ra, rbad, rb, rnul, rnone, rab, rself, rmissing, ragain, runknown, rnoSource] = results;
  expect([ra, rb, rab, ragain].map((r) => r?.error)).toEqual([undefined, undefined, undefined, undefined]);
  expect(ra).toMatchObject({ requestId: a, created: true });
  expect(rb).toMatchObject({ requestId: b, created: true });
  expect(rab).toMatchObject({ requestId: ab, ciId: ra?.ciId, targetCiId: rb?.ciId, created: true });
  // The same relationship again: nothing recorded, as AddRelationship answers it.
  expect(ragain).toMatchObject({ ciId: ra?.ciId, targetCiId: rb?.ciId, created: false });
  expect(refusal(rbad)).toMatchObject({
    code: status.INVALID_ARGUMENT,
    fields: ["register_configuration_item.name:string.min_len"],
  });
  expect(refusal(rnul)).toMatchObject({
    code: status.INVALID_ARGUMENT,
    fields: ["register_configuration_item.name:string.no_control_characters"],
  });
  expect(refusal(rnone)).toMatchObject({ code: status.INVALID_ARGUMENT, fields: ["item:required"] });
  expect(refusal(rself)).toMatchObject({ code: status.FAILED_PRECONDITION, rule: "relationship.no_self_reference" });
  expect(refusal(rmissing)).toMatchObject({ code: status.NOT_FOUND, resource: "ci-nowhere" });
  expect(refusal(runknown)).toMatchObject({ code: status.NOT_FOUND });
  // A source that does not exist is named too, as AddRelationship names it.
  expect(refusal(rnoSource)).toMatchObject({ code: status.NOT_FOUND, resource: "ci-absent-source" });

  const source = await client.getConfigurationItem({ ciId: ra?.ciId as string });
  expect(source.item).toMatchObject({ version: 2n, relationships: [{ targetCiId: rb?.ciId }] });
  const { incoming } = await client.listRelationships({ ciId: rb?.ciId as string });
  expect(incoming).toEqual([expect.objectContaining({ sourceCiId: ra?.ciId, type: RelationshipType.DEPENDS_ON })]);
  const impact = await client.analyzeImpact({ ciId: rb?.ciId as string });
  expect(impact.impacted.map((i) => i.ciId)).toEqual([ra?.ciId]);
});

test("retrying the same items returns the same answers and records no new events", async () => {
  const [a, b, ab] = [randomUUID(), randomUUID(), randomUUID()];
  const items = [register(a, uniqueId("web")), register(b, uniqueId("host"), CiType.HOST)];
  const relationship = relate(ab, byRequest(a), byRequest(b), RelationshipType.RUNS_ON);
  const first = await client.importConfiguration([{ items }, { items: [relationship] }]);
  expect(first.results.every((r) => r.error === undefined)).toBe(true);
  const before = await eventCount();

  // The whole import again, then its items in another order, in one message.
  const again = await client.importConfiguration([{ items }, { items: [relationship] }]);
  const reordered = await client.importConfiguration([{ items: [relationship, ...items] }]);
  expect(again.results).toEqual(first.results);
  expect(reordered.results).toEqual([first.results[2], first.results[0], first.results[1]]);
  expect(await eventCount()).toBe(before);

  // The same request id with other content is refused, and records nothing.
  const { results } = await client.importConfiguration([{ items: [register(a, "another name")] }]);
  expect(refusal(results[0])).toMatchObject({ code: status.FAILED_PRECONDITION, rule: "request.idempotency" });
  expect(await eventCount()).toBe(before);
});

test("relationships refer to CIs of earlier messages, earlier imports and single registrations", async () => {
  const [hub, leaf] = [randomUUID(), randomUUID()];
  const single = await client.registerConfigurationItem({
    requestId: randomUUID(),
    name: uniqueId("payments"),
    type: CiType.BUSINESS_SERVICE,
  });
  const singleId = single.item?.ciId as string;
  const first = await client.importConfiguration([
    { items: [register(hub, uniqueId("gateway"))] },
    // A later message of the same call: by request id and by the id the first answer returned.
    {
      items: [
        register(leaf, uniqueId("cache"), CiType.COMPONENT),
        relate(randomUUID(), byRequest(leaf), byRequest(hub)),
      ],
    },
  ]);
  const [rhub, rleaf, rlink] = first.results;
  expect(rlink).toMatchObject({ ciId: rleaf?.ciId, targetCiId: rhub?.ciId, created: true });
  // Another import refers to both by their registration request ids, and to a CI by id.
  const second = await client.importConfiguration([
    {
      items: [
        relate(randomUUID(), byRequest(hub), byId(singleId), RelationshipType.PART_OF),
        relate(randomUUID(), byRequest(leaf), byRequest(hub), RelationshipType.CONNECTS_TO),
      ],
    },
  ]);
  expect(second.results).toEqual([
    expect.objectContaining({ ciId: rhub?.ciId, targetCiId: singleId, created: true }),
    expect.objectContaining({ ciId: rleaf?.ciId, targetCiId: rhub?.ciId, created: true }),
  ]);
  // The leaf depends on the hub, which is part of the business service.
  const impact = await client.analyzeImpact({ ciId: rhub?.ciId as string });
  expect(impact.impacted.map((i) => i.ciId).sort()).toEqual([rleaf?.ciId, singleId].sort());
});

test("imported CIs and relationships are published exactly as the single-item RPCs' events", async () => {
  const name = uniqueId("shape");
  const single = await client.registerConfigurationItem({
    requestId: randomUUID(),
    name,
    type: CiType.SERVICE,
    owner: "team-a",
  });
  const singleId = single.item?.ciId as string;
  const target = await client.registerConfigurationItem({ requestId: randomUUID(), name, type: CiType.HOST });
  const targetId = target.item?.ciId as string;
  await client.addRelationship({
    requestId: randomUUID(),
    sourceCiId: singleId,
    type: RelationshipType.RUNS_ON,
    targetCiId: targetId,
  });
  const requestId = randomUUID();
  const { results } = await client.importConfiguration([
    {
      items: [
        register(requestId, name),
        relate(randomUUID(), byRequest(requestId), byId(targetId), RelationshipType.RUNS_ON),
      ],
    },
  ]);
  const importedId = results[0]?.ciId as string;

  await waitFor(async () => published.get(singleId)?.length === 2 && published.get(importedId)?.length === 2, {
    timeoutMs: 20_000,
    description: "both CIs' events on the topic",
  });
  // Ids, times and request ids differ; everything else (fields set, headers, types) is the same.
  const shape = (key: string, ciId: string) =>
    published.get(key)?.map(({ headers, event }) =>
      JSON.parse(
        JSON.stringify({ headers, event }, (k, v) => {
          if (["eventId", "requestId", "correlationId", "causationId", "seconds", "nanos"].includes(k)) return typeof v;
          if (v === ciId) return "<ci>";
          return typeof v === "bigint" ? v.toString() : v;
        }),
      ),
    );
  expect(shape(importedId, importedId)).toEqual(shape(singleId, singleId));
  expect(published.get(importedId)?.[0]?.event).toMatchObject({
    $typeName: "rdm.configuration.v1.ConfigurationItemRegistered",
    metadata: { actor: "discovery", requestId, streamId: importedId, streamVersion: 1n },
  });
});

test("concurrent imports on one source: every relationship recorded once, each stream's versions in order", async () => {
  const source = randomUUID();
  const targets = Array.from({ length: 60 }, () => randomUUID());
  await client.importConfiguration([
    { items: [register(source, uniqueId("shared")), ...targets.map((t) => register(t, uniqueId("t")))] },
  ]);
  const relationships = (from: number) =>
    targets.slice(from, from + 30).map((t) => relate(randomUUID(), byRequest(source), byRequest(t)));
  // Two calls write the same stream at once; a batch that meets the other's commit is decided
  // again on fresh state (whether they overlap is up to the scheduler: the outcome is the same).
  const [first, second] = await Promise.all([
    client.importConfiguration([{ items: relationships(0) }]),
    client.importConfiguration([{ items: relationships(30) }]),
  ]);
  expect([...first.results, ...second.results].every((r) => r.created && !r.error)).toBe(true);
  const sourceId = first.results[0]?.ciId as string;
  const { item } = await client.getConfigurationItem({ ciId: sourceId });
  expect(item?.version).toBe(61n);
  expect(item?.relationships).toHaveLength(60);
  const { changes } = await client.getConfigurationItemHistory({ ciId: sourceId });
  expect(changes.map((c) => c.version)).toEqual(Array.from({ length: 61 }, (_, i) => BigInt(i + 1)));
});

test("the same request id twice in one message answers the first result twice", async () => {
  const id = randomUUID();
  const item = register(id, uniqueId("twice"));
  const { results } = await client.importConfiguration([{ items: [item, item, register(id, "other")] }]);
  expect(results[1]).toEqual(results[0]);
  expect(refusal(results[2])).toMatchObject({ code: status.FAILED_PRECONDITION, rule: "request.idempotency" });
});

test("limits and roles: too many items in a message fail the call, a reader may not import", async () => {
  const tooMany = Array.from({ length: 1001 }, () => register(randomUUID(), "x"));
  const rejected = await client.importConfiguration([{ items: tooMany }]).catch((error: unknown) => error);
  expect(errorDetails(rejected)).toMatchObject({
    code: status.INVALID_ARGUMENT,
    badRequest: { fieldViolations: [expect.objectContaining({ field: "items", reason: "repeated.max_items" })] },
  });
  const viewer = await clientAs(["viewer"]);
  const denied = await viewer.importConfiguration([{ items: [register(randomUUID(), "x")] }]).catch((e: unknown) => e);
  viewer.close();
  expect(errorDetails(denied).code).toBe(status.PERMISSION_DENIED);
});

test("a large import leaves the planner fresh statistics of the tables it filled; small ones do not", async () => {
  const lastAnalyze = async () =>
    (
      await pool.query<{ relname: string; last_analyze: Date | null }>(
        `SELECT relname, last_analyze FROM pg_stat_user_tables
         WHERE relname IN ('events', 'configuration_items', 'ci_relationships') ORDER BY relname`,
      )
    ).rows;
  // Every import before this one appended fewer than 1,000 events in a call.
  expect((await lastAnalyze()).map((t) => t.last_analyze)).toEqual([null, null, null]);
  const { results } = await client.importConfiguration([
    { items: Array.from({ length: 600 }, () => register(randomUUID(), uniqueId("bulk"))) },
    { items: Array.from({ length: 400 }, () => register(randomUUID(), uniqueId("bulk"))) },
  ]);
  expect(results.filter((r) => r.created)).toHaveLength(1000);
  // The statistics views show another backend's ANALYZE once it reports it.
  await waitFor(async () => (await lastAnalyze()).every((t) => t.last_analyze !== null));
});
