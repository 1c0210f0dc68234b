// rebuildQueryTables against PostgreSQL: the rows equal what the commands' projections wrote, and a
// rebuild that PostgreSQL ends as a deadlock's victim starts again.
import type { EventStore } from "@rdm/eventstore";
import { type TestDatabase, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { CommandHandler, type QueryTables, rebuildQueryTables, streamRows } from "../src/index.js";
import { addNote, codec, type NoteEvent, type Notes, notes, notesStore, origin } from "./notes.js";

let db: TestDatabase;
let pool: pg.Pool;
let rebuildPool: pg.Pool;
let store: EventStore;
let handler: CommandHandler<NoteEvent>;
const project = async (tx: pg.PoolClient, outcome: { streamId: string; after: Notes }) =>
  saveNotes(tx, outcome.streamId, outcome.after);

const saveNotes = async (client: pg.ClientBase, streamId: string, state: Notes) => {
  await client.query(
    "INSERT INTO note_rows VALUES ($1, $2) ON CONFLICT (stream_id) DO UPDATE SET notes = excluded.notes",
    [streamId, state.notes.join()],
  );
  await client.query("INSERT INTO note_counts VALUES ($1, $2) ON CONFLICT (stream_id) DO UPDATE SET n = excluded.n", [
    streamId,
    state.notes.length,
  ]);
};

const tables: QueryTables<NoteEvent> = {
  tables: ["note_rows", "note_counts"],
  codec,
  streams: {
    notes: streamRows(notes, async (client, state, streamId) => {
      await saveNotes(client, streamId, state);
      return true;
    }),
  },
};

const rowsOf = async () => ({
  rows: (await pool.query("SELECT * FROM note_rows ORDER BY stream_id")).rows,
  counts: (await pool.query("SELECT * FROM note_counts ORDER BY stream_id")).rows,
});

beforeAll(async () => {
  ({ db, pool, store } = await notesStore("query_tables"));
  await pool.query("CREATE TABLE note_rows (stream_id text PRIMARY KEY, notes text NOT NULL)");
  await pool.query("CREATE TABLE note_counts (stream_id text PRIMARY KEY, n int NOT NULL)");
  handler = new CommandHandler({ store, codec });
  rebuildPool = new pg.Pool({ connectionString: db.url, max: 1, options: "-c deadlock_timeout=2s" });
  for (const stream of [uniqueId("notes"), uniqueId("notes")])
    for (const note of ["a", "b"]) await handler.handle(origin(), addNote(stream, note, { project }));
});

afterAll(async () => {
  await rebuildPool?.end();
  await pool?.end();
  await db?.drop();
});

test("the rebuilt rows equal the projections' rows; rows no events made are gone", async () => {
  const live = await rowsOf();
  expect(live.rows).toHaveLength(2);
  await pool.query("INSERT INTO note_rows VALUES ('stray', 'x')");
  expect(await rebuildQueryTables(pool, store, tables)).toEqual({ notes: 2 });
  expect(await rowsOf()).toEqual(live);
});

/** Whether a lock of `mode` on `table` is waited for. */
const waitedFor = async (table: string, mode: string) =>
  (
    await pool.query("SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass AND mode = $2", [
      table,
      mode,
    ])
  ).rowCount;

test("a command that appends while the rebuild holds the tables writes its rows after it, on top of the rebuilt ones", async () => {
  const [stream] = (await rowsOf()).rows.map((r) => r.stream_id as string);
  // A writer in progress keeps the rebuild waiting for its lock until this test lets it go.
  const writer = await pool.connect();
  try {
    await writer.query("BEGIN");
    await writer.query("LOCK TABLE note_rows IN ROW EXCLUSIVE MODE");
    const rebuilt = rebuildQueryTables(pool, store, tables);
    await waitFor(() => waitedFor("note_rows", "ExclusiveLock"));
    // The command appends, then its projection queues behind the rebuild's lock.
    const handled = handler.handle(origin(), addNote(stream as string, "c", { project }));
    await waitFor(() => waitedFor("note_rows", "RowExclusiveLock"));
    await writer.query("COMMIT");
    expect(await rebuilt).toEqual({ notes: 2 });
    expect((await handled).value).toBe("a,b,c");
  } finally {
    writer.release();
  }
  const live = await rowsOf();
  expect(live.rows.find((r) => r.stream_id === stream)).toEqual({ stream_id: stream, notes: "a,b,c" });
  await rebuildQueryTables(pool, store, tables);
  expect(await rowsOf()).toEqual(live);
});

test("a rebuild that PostgreSQL ends as a deadlock's victim starts again and completes", async () => {
  const live = await rowsOf();
  const deadlocks = async () =>
    Number(
      (await pool.query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")).rows[0].deadlocks,
    );
  const before = await deadlocks();
  // A writer holding note_counts' rows, then wanting note_rows', which the rebuild locks first: the
  // order a group commit of other stream types could take. It waits longest before it checks for a
  // deadlock, so the rebuild is the one ended.
  const writer = await pool.connect();
  try {
    await writer.query("BEGIN");
    await writer.query("SET LOCAL deadlock_timeout = '60s'");
    await writer.query("INSERT INTO note_counts VALUES ('writer', 1)");
    // The rebuild checks for a deadlock once, 2 s into its wait: the writer's insert comes before.
    const rebuilt = rebuildQueryTables(rebuildPool, store, tables);
    await waitFor(() => waitedFor("note_counts", "ExclusiveLock"));
    await writer.query("INSERT INTO note_rows VALUES ('writer', 'w')");
    await writer.query("COMMIT");
    expect(await rebuilt).toEqual({ notes: 2 });
  } finally {
    writer.release();
  }
  // Statistics reach pg_stat_database a little after the transaction that counted them.
  await waitFor(async () => (await deadlocks()) > before);
  expect(await rowsOf()).toEqual(live);
});
