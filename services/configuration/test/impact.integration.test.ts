// Impact analysis answers from a graph held in memory: it must still answer what the database
// holds at the call, whoever wrote it. Two replicas of the service on one database, through gRPC.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { mintDevToken } from "@rdm/auth";
import { createGrpcClient, errorDetails, type GrpcClient } from "@rdm/grpc";
import { CiType, RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  AnalyzeImpactRequestSchema,
  ConfigurationService,
  ImpactPathDetail,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type { RunningService } from "@rdm/runtime";
import { createTestDatabase, testKafkaBrokers, testTopicPrefix, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { analyzeImpactHandler } from "../src/api/analyze-impact.js";
import { startConfigurationService } from "../src/index.js";
import { ImpactGraph } from "../src/store/impact-graph.js";

type Client = GrpcClient<(typeof ConfigurationService)["method"]>;
const secret = randomUUID() + randomUUID();
const topicPrefix = testTopicPrefix("configuration-impact");
const replicas: RunningService[] = [];
let writer: Client;
let reader: Client;
let databaseUrl: string;
let dropDb: () => Promise<void>;

beforeAll(async () => {
  const brokers = await testKafkaBrokers();
  const db = await createTestDatabase("configuration_impact");
  databaseUrl = db.url;
  dropDb = db.drop;
  const token = await mintDevToken({
    subject: "cmdb-admin",
    roles: ["config-manager"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });
  replicas.push(
    ...(await Promise.all(
      [1, 2].map(() =>
        startConfigurationService({
          DATABASE_URL: db.url,
          KAFKA_BROKERS: brokers.join(","),
          KAFKA_TOPIC_PREFIX: topicPrefix,
          AUTH_JWT_SECRET: secret,
          GRPC_PORT: "0",
          LOG_LEVEL: "warn",
          CONFIGURATION_CONSUMER_GROUP: uniqueId("configuration-baselines"),
          CONFIGURATION_CONSUMER_SESSION_TIMEOUT_MS: "6000",
        }),
      ),
    )),
  );
  [writer, reader] = replicas.map((r) => createGrpcClient(ConfigurationService, `127.0.0.1:${r.port}`, { token })) as [
    Client,
    Client,
  ];
});

afterAll(async () => {
  writer?.close();
  reader?.close();
  for (const replica of replicas) await replica.stop();
  await dropDb?.();
});

const registerCi = async (name: string) =>
  (await writer.registerConfigurationItem({ requestId: randomUUID(), name, type: CiType.SERVICE, owner: "team" })).item
    ?.ciId as string;
const relate = (source: string, target: string) =>
  writer.addRelationship({
    requestId: randomUUID(),
    sourceCiId: source,
    type: RelationshipType.DEPENDS_ON,
    targetCiId: target,
  });
const impactOn = async (ciId: string) =>
  (await reader.analyzeImpact({ ciId })).impacted.map((i) => [i.name, i.depth, i.path.length]);

test("another replica's writes show in the next answer (root included), even while an older transaction holds the commit horizon back", async () => {
  const [db, api, web] = [await registerCi("db"), await registerCi("api"), await registerCi("web")];
  await relate(api, db);
  expect(await impactOn(db)).toEqual([["api", 1, 2]]); // the reader loads its graph here
  // The answer's root is the item as it is now, also one registered or changed since.
  const cache = await registerCi("cache");
  expect((await reader.analyzeImpact({ ciId: cache })).root?.name).toBe("cache");
  await writer.updateConfigurationItem({ requestId: randomUUID(), ciId: db, owner: "team-data" });
  expect((await reader.analyzeImpact({ ciId: db })).root).toMatchObject({
    name: "db",
    owner: "team-data",
    version: 2n,
  });

  // An open transaction with an id older than every write below: the relay would wait for it,
  // the impact answer must not.
  const held = new pg.Client({ connectionString: databaseUrl });
  await held.connect();
  try {
    await held.query("BEGIN");
    await held.query("SELECT pg_current_xact_id()");
    await relate(web, api);
    expect(await impactOn(db)).toEqual([
      ["api", 1, 2],
      ["web", 2, 3],
    ]);
    await writer.updateConfigurationItem({ requestId: randomUUID(), ciId: web, name: "storefront" });
    expect(await impactOn(db)).toEqual([
      ["api", 1, 2],
      ["storefront", 2, 3],
    ]);
    await writer.removeRelationship({
      requestId: randomUUID(),
      sourceCiId: api,
      type: RelationshipType.DEPENDS_ON,
      targetCiId: db,
    });
    expect(await impactOn(db)).toEqual([]);
    expect(await impactOn(api)).toEqual([["storefront", 1, 2]]);
  } finally {
    await held.query("ROLLBACK");
    await held.end();
  }
  // Past the horizon now: still the same answer.
  await relate(api, db);
  expect(await impactOn(db)).toEqual([
    ["api", 1, 2],
    ["storefront", 2, 3],
  ]);
});

const anHour = { seconds: 3600n, nanos: 0 };
const msOf = (time: { seconds: bigint; nanos: number } | undefined) =>
  time ? Number(time.seconds) * 1000 + time.nanos / 1e6 : Number.NaN;

test("with max_staleness, an answer comes from the graph while the database cannot answer; without, it waits for the database", async () => {
  const [db, api] = [await registerCi("stale-db"), await registerCi("stale-api")];
  await relate(api, db);
  const loaded = Date.now();
  // The reader brings its graph up to date here: the write above is in, and as_of says so.
  const first = await reader.analyzeImpact({ ciId: db, maxStaleness: anHour });
  expect(first.impacted.map((i) => i.name)).toEqual(["stale-api"]);
  expect(msOf(first.asOf)).toBeGreaterThanOrEqual(loaded);
  // A lock on the events table: the graph's catch-up query cannot read until it is released.
  const blocker = new pg.Client({ connectionString: databaseUrl });
  await blocker.connect();
  let fresh: Promise<unknown> | undefined;
  try {
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
    let freshAnswered = false;
    fresh = reader.analyzeImpact({ ciId: db }).then((answer) => {
      freshAnswered = true;
      return answer;
    });
    const called = Date.now();
    const stale = await reader.analyzeImpact({ ciId: db, maxStaleness: anHour });
    expect(stale.impacted.map((i) => i.name)).toEqual(["stale-api"]);
    expect(msOf(stale.asOf)).toBeGreaterThanOrEqual(called - 3_600_000);
    expect(msOf(stale.asOf)).toBeLessThanOrEqual(Date.now());
    // Too old for a bound of one millisecond by now (the lock holds every refresh back): it waits too.
    let strictAnswered = false;
    const strict = reader
      .analyzeImpact({ ciId: db, maxStaleness: { seconds: 0n, nanos: 1_000_000 } })
      .then(() => (strictAnswered = true));
    expect(freshAnswered).toBe(false);
    await blocker.query("COMMIT");
    await Promise.all([fresh, strict]);
    expect(strictAnswered).toBe(true);
  } finally {
    await blocker.query("ROLLBACK").catch(() => undefined);
    await blocker.end();
    await fresh?.catch(() => undefined);
  }
});

test("with max_staleness, a write shows once the background refresh has run, and no answer claims an as_of it does not hold", async () => {
  const [db, api, web] = [await registerCi("bg-db"), await registerCi("bg-api"), await registerCi("bg-web")];
  await relate(api, db);
  expect((await reader.analyzeImpact({ ciId: db })).impacted.map((i) => i.name)).toEqual(["bg-api"]);
  await relate(web, db);
  const written = Date.now();
  const seen: string[][] = [];
  // Only calls that allow an hour's staleness: each starts a refresh in the background.
  for (let call = 0; call < 1_000; call++) {
    const answer = await reader.analyzeImpact({ ciId: db, maxStaleness: anHour });
    const names = answer.impacted.map((i) => i.name);
    seen.push(names);
    // An answer that says it holds every write before `written` holds this one.
    if (msOf(answer.asOf) >= written) expect(names).toEqual(["bg-api", "bg-web"]);
    if (names.length === 2) break;
  }
  expect(seen.at(-1)).toEqual(["bg-api", "bg-web"]);
});

/** `pool` as the graph sees it, calling `onCatchUp` with each catch-up query's values. */
const watchedPool = (pool: pg.Pool, onCatchUp: (values: unknown[] | undefined) => void) =>
  ({
    // Every argument passed on: the graph's catch-up also queries with text and values.
    query: (config: pg.QueryConfig | string, values?: unknown[]) => {
      if (typeof config === "object" && config.name === "rdm_impact_changes") onCatchUp(config.values);
      return pool.query(config, values);
    },
    connect: () => pool.connect(),
  }) as unknown as pg.Pool;

test("calls that allow staleness bring the graph up to date in the background once per 20 ms, not once a call", async () => {
  const root = await registerCi("rate-root");
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  let refreshes = 0;
  const watched = watchedPool(pool, () => refreshes++);
  try {
    const analyzeImpact = analyzeImpactHandler(watched);
    await analyzeImpact(create(AnalyzeImpactRequestSchema, { ciId: root }));
    refreshes = 0;
    const started = Date.now();
    let calls = 0;
    // In this process a call takes well under a millisecond: hundreds of calls, a round trip each
    // before. Each comes on a turn of the event loop of its own, as calls come from the network,
    // so the refreshes' answers are read meanwhile.
    while (calls < 300 || Date.now() - started < 200) {
      await new Promise(setImmediate);
      await analyzeImpact(create(AnalyzeImpactRequestSchema, { ciId: root, maxStaleness: anHour }));
      calls++;
    }
    const elapsed = Date.now() - started;
    expect(refreshes).toBeGreaterThan(0);
    expect(refreshes).toBeLessThanOrEqual(Math.floor(elapsed / 20) + 1);
  } finally {
    await pool.end();
  }
});

test("calls that come while a refresh runs share the next one: one round trip after it, not one each", async () => {
  const root = await registerCi("shared-root");
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  let refreshes = 0;
  const watched = watchedPool(pool, () => refreshes++);
  const blocker = new pg.Client({ connectionString: databaseUrl });
  await blocker.connect();
  try {
    const analyzeImpact = analyzeImpactHandler(watched);
    await analyzeImpact(create(AnalyzeImpactRequestSchema, { ciId: root }));
    refreshes = 0;
    // The first call's refresh waits on a lock of the events table, the others come meanwhile.
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
    const first = analyzeImpact(create(AnalyzeImpactRequestSchema, { ciId: root }));
    await waitFor(async () => refreshes === 1, { description: "the first call's refresh sent" });
    const others = Array.from({ length: 20 }, () => analyzeImpact(create(AnalyzeImpactRequestSchema, { ciId: root })));
    await blocker.query("COMMIT");
    await Promise.all([first, ...others]);
    expect(refreshes).toBe(2);
  } finally {
    await blocker.query("ROLLBACK").catch(() => undefined);
    await blocker.end();
    await pool.end();
  }
});

test("the graph reads on from the last commit horizon, not from the last CI change: other streams' events are not read again at every call", async () => {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const horizons: bigint[] = [];
  // The pool as the graph sees it, noting where each catch-up starts reading.
  const watched = watchedPool(pool, (values) => horizons.push(BigInt(values?.[0] as string)));
  try {
    const graph = new ImpactGraph(watched);
    await graph.refresh();
    for (const version of ["1.0.0", "1.0.1", "1.0.2"]) {
      await writer.registerArtifact({
        requestId: randomUUID(),
        name: `horizon-${randomUUID()}`,
        version,
        sha256: "a".repeat(64),
        sizeBytes: 1n,
        mediaUri: "s3://dml/horizon.tgz",
      });
    }
    const { rows } = await pool.query<{ last: string }>(
      "SELECT max(transaction_id)::text AS last FROM events WHERE stream_type = 'artifact'",
    );
    const lastArtifact = BigInt(rows[0]?.last as string);
    // A transaction open at a refresh, anywhere on the server (another test's too), holds the
    // horizon below it for that refresh: refresh until the horizon passes the writes.
    await waitFor(
      async () => {
        await graph.refresh();
        return (horizons.at(-1) ?? 0n) > lastArtifact;
      },
      { timeoutMs: 60_000, description: "the catch-up horizon past the last artifact" },
    );
  } finally {
    await pool.end();
  }
});

test("an answer larger than a client receives is refused with what to ask instead; parent pointers still answer", async () => {
  // A chain: each CI depends on the one before it. Whole paths grow with the square of its length
  // (about 5.7 MB here), parent pointers with its length.
  const requests = Array.from({ length: 520 }, () => randomUUID());
  const { results } = await writer.importConfiguration([
    {
      items: requests.map((requestId, i) => ({
        item: {
          case: "registerConfigurationItem" as const,
          value: { requestId, name: `link-${i}`, type: CiType.SERVICE, owner: "team" },
        },
      })),
    },
    {
      items: requests.slice(1).map((requestId, i) => ({
        item: {
          case: "addRelationship" as const,
          value: {
            requestId: randomUUID(),
            source: { reference: { case: "registrationRequestId" as const, value: requestId } },
            type: RelationshipType.DEPENDS_ON,
            target: { reference: { case: "registrationRequestId" as const, value: requests[i] as string } },
          },
        },
      })),
    },
  ]);
  expect(results.filter((r) => r.error)).toEqual([]);
  const first = results[0]?.ciId as string;

  const error = await reader.analyzeImpact({ ciId: first }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const details = errorDetails(error);
  expect(details.code).toBe(status.FAILED_PRECONDITION);
  expect(details.message).toMatch(/IMPACT_PATH_DETAIL_PARENT/);
  expect(details.preconditionFailure?.violations).toEqual([
    expect.objectContaining({ type: "impact.answer_too_large", subject: first }),
  ]);

  const parents = await reader.analyzeImpact({ ciId: first, pathDetail: ImpactPathDetail.PARENT });
  expect(parents.impacted).toHaveLength(519);
  expect(parents.impacted.at(-1)).toMatchObject({ name: "link-519", depth: 519, parentCiId: results[518]?.ciId });
  // Whole paths of the first levels still fit.
  expect((await reader.analyzeImpact({ ciId: first, maxDepth: 100 })).impacted.at(-1)?.path).toHaveLength(101);
});
