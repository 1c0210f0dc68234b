// The release service's streams on real PostgreSQL: model versions under a racing create, and
// the stream type of release and model streams (new appends, and the migration of old ones),
// the model cache's invalidation, and release keys from sequences.
import { randomUUID } from "node:crypto";
import { clone, create } from "@bufbuild/protobuf";
import { CommandHandler } from "@rdm/command-handler";
import { EventStore, eventStoreMigrations, runMigrations, withTransaction } from "@rdm/eventstore";
import { createLogger } from "@rdm/observability";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ReleaseModelVersionCreatedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { CreateReleaseModelResponseSchema } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { createTestDatabase, type TestDatabase, waitFor } from "@rdm/testkit";
import pg from "pg";
import { EMERGENCY_MODEL } from "../src/domain/models.js";
import { type ReleaseServiceEvent, releaseCodec } from "../src/store/event-codec.js";
import { createModelVersion, MODEL_VERSIONS_CHANNEL, ReleaseModelStore } from "../src/store/model-store.js";
import { releaseKeys } from "../src/store/release-keys.js";
import { releaseMigrations } from "../src/store/release-tables.js";
import { releaseCommand } from "../src/store/releases.js";
import { RELEASE_ID, register, T0 } from "./release-spec.js";

const databases: TestDatabase[] = [];
const pools: pg.Pool[] = [];

/** A fresh database with the event store and the release migrations up to `releaseVersion`. */
async function database(releaseVersion = Number.POSITIVE_INFINITY) {
  const db = await createTestDatabase("release_store");
  databases.push(db);
  const pool = new pg.Pool({ connectionString: db.url });
  pools.push(pool);
  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, {
    component: "release",
    migrations: releaseMigrations.filter((m) => m.version <= releaseVersion),
  });
  const store = new EventStore(pool);
  return { pool, store, handler: new CommandHandler({ store, codec: releaseCodec, clock: () => T0 }) };
}

afterAll(async () => {
  for (const pool of pools) await pool.end();
  for (const db of databases) await db.drop();
});

const hotfix = (version = 0) => clone(ReleaseModelSchema, { ...EMERGENCY_MODEL, name: "hotfix", version });

const origin = () => ({ actor: "rita", requestId: randomUUID() });

/** CreateReleaseModel as the API runs it; answers the created model. */
const createModel = async (handler: CommandHandler<ReleaseServiceEvent>, model: ReturnType<typeof hotfix>) =>
  (
    await handler.handle(origin(), {
      ...createModelVersion(model),
      response: CreateReleaseModelResponseSchema,
      respond: ({ events }) => create(CreateReleaseModelResponseSchema, { model: events[0]?.model }),
      requestHash: "",
    })
  ).model;

test("a create that races another one gets the next version number, not the same", async () => {
  const { pool, store, handler } = await database();
  const models = new ReleaseModelStore(store, pool);
  // Holds every access to the streams table, so the create under test stops after reading the
  // model's events while the rival create below commits.
  const rival = await pool.connect();
  try {
    await rival.query("BEGIN");
    await rival.query("LOCK TABLE streams IN ACCESS EXCLUSIVE MODE");
    const racing = createModel(handler, hotfix());
    await waitFor(
      async () =>
        (
          await pool.query(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
          )
        ).rowCount,
      { description: "the create waiting on the streams table" },
    );
    const version1 = create(ReleaseModelVersionCreatedSchema, {
      model: hotfix(1),
      metadata: create(EventMetadataSchema, { eventId: randomUUID(), actor: "rival" }),
    });
    await store.appendToStream("releasemodel-hotfix", "no_stream", [releaseCodec.encode(version1)], {
      client: rival,
      streamType: "releasemodel",
    });
    await rival.query("COMMIT");
    expect((await racing)?.version).toBe(2);
  } finally {
    rival.release();
  }
  expect((await models.versions("hotfix")).map((m) => m.version)).toEqual([1, 2]);
});

test("release streams are of type release, model streams of type releasemodel", async () => {
  const { pool, handler } = await database();
  await withTransaction(pool, (tx) =>
    handler.handleIn(
      tx,
      origin(),
      releaseCommand(RELEASE_ID, () => register()),
    ),
  );
  await createModel(handler, hotfix());
  const { rows } = await pool.query(
    `SELECT DISTINCT stream_id, stream_type FROM events
     UNION SELECT stream_id, stream_type FROM streams ORDER BY stream_type`,
  );
  expect(rows).toEqual([
    { stream_id: RELEASE_ID, stream_type: "release" },
    { stream_id: "releasemodel-hotfix", stream_type: "releasemodel" },
  ]);
});

test("the migration types release streams appended without a type as release", async () => {
  const { pool, store } = await database(3);
  const event = { type: "rdm.release.v1.ReleaseAbandoned", data: new Uint8Array(), metadata: {} };
  await store.appendToStream(RELEASE_ID, "no_stream", [event]);
  await store.appendToStream("releasemodel-hotfix", "no_stream", [event], { streamType: "releasemodel" });
  expect((await pool.query("SELECT stream_type FROM streams WHERE stream_id = $1", [RELEASE_ID])).rows).toEqual([
    { stream_type: RELEASE_ID.split("-")[0] },
  ]);

  await runMigrations(pool, { component: "release", migrations: releaseMigrations });
  const { rows } = await pool.query(
    `SELECT DISTINCT stream_id, stream_type FROM events
     UNION SELECT stream_id, stream_type FROM streams ORDER BY stream_type`,
  );
  expect(rows).toEqual([
    { stream_id: RELEASE_ID, stream_type: "release" },
    { stream_id: "releasemodel-hotfix", stream_type: "releasemodel" },
  ]);
});

test("a model version created by another instance reaches a listening cache at commit", async () => {
  const { pool, store, handler } = await database();
  const models = new ReleaseModelStore(store, pool);
  const listener = models.listen(createLogger("release-test", "error"));
  try {
    await waitFor(() => models.caching, { description: "the cache listening" });
    expect(await models.get("hotfix")).toBeUndefined();
    expect(await models.get("hotfix")).toBeUndefined(); // kept: the absence is cached too
    // Another instance: its own store object, no call to this cache's invalidate.
    await createModel(handler, hotfix());
    await waitFor(async () => (await models.get("hotfix"))?.version === 1, {
      description: "the cache dropping hotfix on the notification",
    });
    await createModel(handler, hotfix());
    await waitFor(async () => (await models.get("hotfix"))?.version === 2, { description: "version 2 seen" });
    expect((await models.get("hotfix", 1))?.version).toBe(1);
  } finally {
    await listener.stop();
  }
});

test("a cache whose listening connection is cut listens again on another, says so, and sees later versions", async () => {
  const { pool, store, handler } = await database();
  const models = new ReleaseModelStore(store, pool);
  const logger = createLogger("release-test", "fatal");
  const said: string[] = [];
  const info = logger.info.bind(logger);
  logger.info = ((...args: Parameters<typeof info>) => {
    said.push(String(args.at(-1)));
    return info(...args);
  }) as typeof logger.info;
  const listener = models.listen(logger);
  const listening = async () =>
    (
      await pool.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1",
        [`LISTEN ${MODEL_VERSIONS_CHANNEL}`],
      )
    ).rows.map((r) => r.pid);
  try {
    await waitFor(() => models.caching, { description: "the cache listening" });
    const [first] = await listening();
    await pool.query("SELECT pg_terminate_backend($1)", [first]);
    await waitFor(async () => models.caching && (await listening()).some((pid) => pid !== first), {
      description: "the cache listening again on another connection",
    });
    expect(said).toEqual(["release model cache: listening again"]);
    expect(await models.get("hotfix")).toBeUndefined();
    await createModel(handler, hotfix());
    await waitFor(async () => (await models.get("hotfix"))?.version === 1, {
      description: "the new listener's notification dropping hotfix",
    });
  } finally {
    await listener.stop();
  }
});

test("release keys continue each year's counter in its sequence, distinct across instances", async () => {
  const { pool } = await database(4);
  await pool.query("INSERT INTO release_keys (year, last) VALUES (2026, 41), (2025, 7)");
  await runMigrations(pool, { component: "release", migrations: releaseMigrations });
  const [first, second] = [releaseKeys(pool, 5), releaseKeys(pool, 5)];
  expect(await first.next(2026)).toBe("REL-2026-0042");
  expect(await second.next(2025)).toBe("REL-2025-0008");
  const keys = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? first : second).next(2027)));
  expect(new Set(keys).size).toBe(24);
  expect(keys.every((k) => /^REL-2027-\d{4}$/.test(k))).toBe(true);
});
