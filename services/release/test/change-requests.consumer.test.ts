// The release's read model of change request states (the gates read it) and the environments the
// changes name: a chunk of change events applied at once leaves the same rows as the same events
// applied one by one, whatever their order, repeats and mix of changes; against real PostgreSQL. And the migration that moved the
// changes' environments it used to keep to the notifier's table.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { eventStoreMigrations, runMigrations, withTransaction } from "@rdm/eventstore";
import type { CloudEvent } from "@rdm/messaging";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestAuthorizedSchema,
  ChangeRequestClosedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestRejectedSchema,
  ChangeRequestSubmittedSchema,
  FreezeWindowDeclaredSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { ReleaseSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import fc from "fast-check";
import type pg from "pg";
import { applyChangeEvent, applyChangeEvents, loadChangeStates } from "../src/consumers/change-requests.js";
import { deploymentEnvironmentMigrations } from "../src/consumers/deployment-outcomes.js";
import { releaseMigrations } from "../src/store/release-tables.js";
import { withDatabaseAt } from "./database-at-version.js";

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase("release_change_states");
  pool = await openDatabase(db.url);
  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, {
    component: "release",
    migrations: [...releaseMigrations, ...deploymentEnvironmentMigrations],
  });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const at = new Date("2026-11-02T10:00:00Z");

/** A change event as the change service publishes it: a state at a stream version, or a freeze (no state). */
function changeEvent(
  changeRequestId: string,
  version: number,
  kind: "submitted" | "authorized" | "raised" | "freeze" | "rejected" | "closed",
): CloudEvent {
  const metadata = {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(new Date(at.getTime() + version * 1000)),
    streamId: changeRequestId,
    streamVersion: BigInt(version),
  };
  const [schema, message] =
    kind === "freeze"
      ? [FreezeWindowDeclaredSchema, create(FreezeWindowDeclaredSchema, { metadata, freezeWindowId: changeRequestId })]
      : kind === "raised"
        ? [
            ChangeRequestRaisedSchema,
            create(ChangeRequestRaisedSchema, {
              metadata,
              changeRequestId,
              state: ChangeState.DRAFT,
              environments: [`prod-${version}`, "staging"],
            }),
          ]
        : kind === "authorized"
          ? [
              ChangeRequestAuthorizedSchema,
              create(ChangeRequestAuthorizedSchema, {
                metadata,
                changeRequestId,
                state: ChangeState.AUTHORIZED,
                linkedReleaseId: `rel-${version}`,
              }),
            ]
          : kind === "rejected"
            ? [
                ChangeRequestRejectedSchema,
                create(ChangeRequestRejectedSchema, { metadata, changeRequestId, state: ChangeState.REJECTED }),
              ]
            : kind === "closed"
              ? [
                  ChangeRequestClosedSchema,
                  create(ChangeRequestClosedSchema, { metadata, changeRequestId, state: ChangeState.CLOSED }),
                ]
              : [
                  ChangeRequestSubmittedSchema,
                  create(ChangeRequestSubmittedSchema, { metadata, changeRequestId, state: ChangeState.SUBMITTED }),
                ];
  return {
    id: metadata.eventId,
    type: schema.typeName,
    source: "rdm/change",
    subject: changeRequestId,
    time: at,
    data: toBinary(schema as never, message as never),
    datacontenttype: "application/protobuf",
  } as CloudEvent;
}

const rows = async (ids: string[]) =>
  (
    await pool.query(
      `SELECT change_request_id, state, linked_release_id, updated_at, version, environments, rejected
       FROM change_request_states WHERE change_request_id = ANY($1) ORDER BY 1`,
      [ids],
    )
  ).rows;

const info = { topic: "change-events", partition: 0, offset: "0" };

test("a chunk at once leaves the same states as its events one by one", async () => {
  const event = fc.record({
    change: fc.integer({ min: 0, max: 3 }),
    version: fc.integer({ min: 1, max: 6 }),
    kind: fc.constantFrom(
      "submitted" as const,
      "authorized" as const,
      "raised" as const,
      "freeze" as const,
      "rejected" as const,
      "closed" as const,
    ),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 12 }), async (drawn) => {
      const run = randomUUID();
      const [oneByOne, atOnce] = [`${run}-a`, `${run}-b`];
      const events = (prefix: string) => drawn.map((e) => changeEvent(`${prefix}-${e.change}`, e.version, e.kind));
      await withTransaction(pool, async (tx) => {
        for (const e of events(oneByOne)) await applyChangeEvent(e, tx);
      });
      await withTransaction(pool, (tx) =>
        applyChangeEvents(
          events(atOnce).map((e) => ({ event: e, info })),
          tx,
        ),
      );
      const ids = (prefix: string) => [0, 1, 2, 3].map((c) => `${prefix}-${c}`);
      const strip = (r: { change_request_id: string }) => ({ ...r, change_request_id: r.change_request_id.slice(-1) });
      expect((await rows(ids(atOnce))).map(strip)).toEqual((await rows(ids(oneByOne))).map(strip));
    }),
    { numRuns: 60 },
  );
});

test("an older version in a later chunk never moves a state back", async () => {
  const id = `chg-${randomUUID()}`;
  await withTransaction(pool, (tx) => applyChangeEvents([{ event: changeEvent(id, 3, "authorized"), info }], tx));
  await withTransaction(pool, (tx) =>
    applyChangeEvents(
      [changeEvent(id, 2, "submitted"), changeEvent(id, 1, "submitted")].map((event) => ({ event, info })),
      tx,
    ),
  );
  expect(await rows([id])).toMatchObject([{ state: "AUTHORIZED", version: "3", linked_release_id: "rel-3" }]);
});

test("a change closed after its rejection is REJECTED to the gates, in one chunk or two; closed alone, CLOSED", async () => {
  const [inOneChunk, inTwo, closedOnly] = [randomUUID(), randomUUID(), randomUUID()];
  await withTransaction(pool, (tx) =>
    applyChangeEvents(
      [changeEvent(inOneChunk, 1, "rejected"), changeEvent(inOneChunk, 2, "closed")].map((event) => ({ event, info })),
      tx,
    ),
  );
  await withTransaction(pool, (tx) => applyChangeEvent(changeEvent(inTwo, 1, "rejected"), tx));
  await withTransaction(pool, (tx) => applyChangeEvent(changeEvent(inTwo, 2, "closed"), tx));
  await withTransaction(pool, (tx) => applyChangeEvent(changeEvent(closedOnly, 2, "closed"), tx));
  const release = create(ReleaseSchema, { linkedChangeRequestIds: [inOneChunk, inTwo, closedOnly] });
  expect((await loadChangeStates(pool, release, [])).map((c) => c.state)).toEqual(["REJECTED", "REJECTED", "CLOSED"]);
  // The table keeps the change's own state (its link rules read it).
  expect((await rows([inOneChunk])).map((r) => [r.state, r.rejected])).toEqual([["CLOSED", true]]);
});

test("a change's environments stay as its raise named them while its later events name none", async () => {
  const id = `chg-${randomUUID()}`;
  await withTransaction(pool, (tx) =>
    applyChangeEvents(
      [changeEvent(id, 1, "raised"), changeEvent(id, 2, "submitted")].map((event) => ({ event, info })),
      tx,
    ),
  );
  await withTransaction(pool, (tx) => applyChangeEvent(changeEvent(id, 3, "authorized"), tx));
  expect(await rows([id])).toMatchObject([{ state: "AUTHORIZED", environments: ["prod-1", "staging"] }]);
});

test("the migration keeping changes' environments in one place moves those the read model knew better", async () => {
  await withDatabaseAt("release_change_environments", 13, async (before, migrateTo) => {
    await before.query(
      `INSERT INTO change_request_states (change_request_id, state, updated_at, version, environments) VALUES
         ('only-read-model', 'DRAFT', now(), 2, '{staging}'), ('both', 'DRAFT', now(), 4, '{old}'),
         ('read-model-newer', 'DRAFT', now(), 6, '{test}'), ('neither', 'DRAFT', now(), 1, NULL);
       INSERT INTO notifier_change_environments VALUES ('both', '{production}', 4), ('read-model-newer', '{dev}', 3)`,
    );
    await migrateTo(14);
    const { rows } = await before.query("SELECT * FROM notifier_change_environments ORDER BY 1");
    expect(rows).toEqual([
      { change_request_id: "both", environments: ["production"], version: "4" },
      { change_request_id: "only-read-model", environments: ["staging"], version: "2" },
      { change_request_id: "read-model-newer", environments: ["test"], version: "6" },
    ]);
  });
});
