// A release's log entries are rows of their own (release_log_view), not part of the snapshot the
// view rewrites on every event: against real PostgreSQL, fed encoded events as the topic carries
// them. The HTTP views show the log as before, in order, across chunks and replays; a view
// projected before keeps its entries (migration 5); a rules change refolds them.
import { randomUUID } from "node:crypto";
import { runMigrations } from "@rdm/eventstore";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import {
  ReleaseDeviationRecordedSchema,
  ReleaseLogEntryRecordedSchema,
  ReleasePlanningUpdatedSchema,
  ReleaseRegisteredSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { LogEntryKind, ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import type pg from "pg";
import { projections } from "../src/projections/index.js";
import { ensureRulesVersion, projectionRulesMigration } from "../src/projections/projection.js";
import { releaseProjectionMigrations } from "../src/projections/releases/migrations.js";
import { releaseProjection } from "../src/projections/releases/projection.js";
import { applyInChunks, eventsOn, projectionDatabase } from "./chunk-fixture.js";
import { listeningGateway } from "./gateway-app.js";

const releaseEvent = eventsOn(RELEASE_EVENTS_TOPIC);

const registered = (releaseId: string) =>
  releaseEvent(ReleaseRegisteredSchema, 1, {
    releaseId,
    key: `REL-${releaseId.slice(0, 4)}`,
    title: "Payments",
    type: ReleaseType.MINOR,
    owner: "olga",
    phase: ReleasePhase.PLANNING,
  });
const logged = (releaseId: string, version: number, text: string) =>
  releaseEvent(ReleaseLogEntryRecordedSchema, version, {
    releaseId,
    entry: { entryId: `e-${version}`, kind: LogEntryKind.RISK, text, recordedBy: "rita" },
  });
const deviated = (releaseId: string, version: number, text: string) =>
  releaseEvent(ReleaseDeviationRecordedSchema, version, {
    releaseId,
    entry: { entryId: `e-${version}`, kind: LogEntryKind.DEVIATION, text, recordedBy: "rita" },
  });
const planned = (releaseId: string, version: number) =>
  releaseEvent(ReleasePlanningUpdatedSchema, version, { releaseId, title: `title ${version}` });

type ReleaseBody = { releaseId: string; log: { text: string }[] };

/** The release's log as GET /v1/releases/:id and the list show it: each entry's text. */
async function logTexts(pool: pg.Pool, releaseId: string) {
  const { app, url, bearer } = await listeningGateway(pool);
  try {
    const get = async (path: string) => {
      const response = await fetch(`${url}${path}`, { headers: { authorization: bearer } });
      expect(response.status).toBe(200);
      return response.json();
    };
    const one = (await get(`/v1/releases/${releaseId}`)) as ReleaseBody;
    const { releases } = (await get("/v1/releases?pageSize=100")) as { releases: ReleaseBody[] };
    const texts = (release: ReleaseBody | undefined) => release?.log.map((e) => e.text);
    expect(texts(releases.find((r) => r.releaseId === releaseId))).toEqual(texts(one));
    return texts(one);
  } finally {
    await app.close();
  }
}

/** The release's row: how many log entries it holds, and whether its snapshot has a log. */
async function viewRow(pool: pg.Pool, releaseId: string) {
  const { rows } = await pool.query(
    `SELECT log_length, snapshot ? 'log' AS snapshot_has_log,
       (SELECT count(*)::int FROM release_log_view l WHERE l.release_id = v.release_id) AS entry_rows
     FROM release_view v WHERE release_id = $1`,
    [releaseId],
  );
  return rows[0];
}

test("log entries across chunks, with a replay, are rows in order; the snapshot holds none", async () => {
  const pool = await projectionDatabase();
  const id = randomUUID();
  const events = [
    registered(id),
    logged(id, 2, "first"),
    planned(id, 3),
    logged(id, 4, "second"),
    deviated(id, 5, "third"),
    logged(id, 6, "fourth"),
  ];
  await applyInChunks(pool, events, [2, 3, 5]);
  // The consumer read from an earlier offset again (after a crash): a registration folds anew.
  await applyInChunks(pool, events, [4]);
  await applyInChunks(pool, [logged(id, 7, "fifth")], []);
  expect(await viewRow(pool, id)).toEqual({ log_length: 5, snapshot_has_log: false, entry_rows: 5 });
  expect(await logTexts(pool, id)).toEqual(["first", "second", "third", "fourth", "fifth"]);
});

test("a view projected with the log in its snapshot keeps its entries, and later ones follow them", async () => {
  const db: TestDatabase = await createTestDatabase("gateway_release_log");
  const pool = await openDatabase(db.url);
  try {
    const before = releaseProjectionMigrations.filter((m) => m.version < 5);
    expect(before).toHaveLength(releaseProjectionMigrations.length - 1);
    for (const p of projections) {
      await runMigrations(pool, { component: p.name, migrations: p === releaseProjection ? before : p.migrations });
    }
    // What the projection wrote before migration 5: a snapshot with the whole log.
    const id = randomUUID();
    await pool.query(
      `INSERT INTO release_view (release_id, key, title, description, type, category, owner, coordinator,
         stakeholders, risk, phase, registered_by, registered_at, version, updated_at, status, snapshot, model)
       VALUES ($1, 'REL-1', 'Payments', '', 'MINOR', '', 'olga', '', '[]', 'UNSPECIFIED', 'PLANNING', 'olga',
         now(), 3, now(), 'ACTIVE', $2, '{"name": "standard"}')`,
      [
        id,
        {
          releaseId: id,
          key: "REL-1",
          title: "Payments",
          version: "3",
          phase: "RELEASE_PHASE_PLANNING",
          log: [
            { entryId: "a", kind: "LOG_ENTRY_KIND_RISK", text: "old first" },
            { entryId: "b", kind: "LOG_ENTRY_KIND_ISSUE", text: "old second" },
          ],
        },
      ],
    );
    await runMigrations(pool, { component: releaseProjection.name, migrations: releaseProjectionMigrations });
    expect(await viewRow(pool, id)).toEqual({ log_length: 2, snapshot_has_log: false, entry_rows: 2 });
    await applyInChunks(pool, [logged(id, 4, "new third")], []);
    expect(await logTexts(pool, id)).toEqual(["old first", "old second", "new third"]);
  } finally {
    await pool.end();
    await db.drop();
  }
});

test("a rules change refolds every entry of the log from the logged events", async () => {
  const pool = await projectionDatabase();
  await runMigrations(pool, { component: "gateway.projections", migrations: [projectionRulesMigration] });
  const id = randomUUID();
  await applyInChunks(pool, [registered(id), logged(id, 2, "first"), deviated(id, 3, "second")], [1]);
  // Rows a gateway folding with other rules would have left: one entry wrong, one too many.
  await pool.query('UPDATE release_log_view SET entry = entry || \'{"text": "stale"}\' WHERE release_id = $1', [id]);
  await pool.query(`INSERT INTO release_log_view VALUES ($1, 2, '{"text": "extra"}')`, [id]);
  await pool.query("UPDATE release_view SET log_length = 3 WHERE release_id = $1", [id]);
  expect(await ensureRulesVersion(pool, releaseProjection)).toBe(true);
  expect(await viewRow(pool, id)).toEqual({ log_length: 2, snapshot_has_log: false, entry_rows: 2 });
  expect(await logTexts(pool, id)).toEqual(["first", "second"]);
});
