import { randomUUID } from "node:crypto";
import { createTestDatabase, type TestDatabase, uniqueId } from "@rdm/testkit";
import pg from "pg";
import {
  DuplicateRequest,
  EventStore,
  eventStoreMigrations,
  isDataException,
  type NewEvent,
  type Projection,
  runMigrations,
  WrongExpectedVersion,
  withTransaction,
} from "../src/index.js";

let db: TestDatabase;
let pool: pg.Pool;
/** One batch in flight at a time: appends made while it runs all wait for the next one. */
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase("group_commit");
  pool = new pg.Pool({ connectionString: db.url, max: 10 });
  await runMigrations(pool, eventStoreMigrations);
  store = new EventStore(pool, { groupCommit: { maxConcurrentBatches: 1 } });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const event = (n: number, type = "rdm.test.v1.Happened"): NewEvent => ({
  type,
  data: new Uint8Array([n]),
  metadata: { actor: "tester" },
});

const transactionIds = async (streams: string[]) => {
  const { rows } = await pool.query<{ transaction_id: string }>(
    "SELECT DISTINCT transaction_id::text AS transaction_id FROM events WHERE stream_id = ANY($1)",
    [streams],
  );
  return rows.map((r) => r.transaction_id);
};

describe("group commit", () => {
  test("concurrent appends to different streams share transactions, each with its own result", async () => {
    const streams = Array.from({ length: 30 }, () => uniqueId("group"));
    // The first append goes alone; the 29 made meanwhile wait for it, then go together.
    const results = await Promise.all(streams.map((s, i) => store.appendToStream(s, "no_stream", [event(i)])));
    expect((await transactionIds(streams)).length).toBeLessThanOrEqual(3);
    for (const [i, stream] of streams.entries()) {
      const read = await store.readStream(stream);
      expect(read.map((e) => [e.version, e.data[0], e.globalPosition])).toEqual([[1, i, results[i]?.positions[0]]]);
      expect(results[i]?.nextVersion).toBe(1);
    }
    expect(new Set(results.map((r) => r.positions[0])).size).toBe(30);
  });

  test("in one batch, a conflict, a duplicate request and a value PostgreSQL refuses fail only their own append", async () => {
    const existing = uniqueId("group");
    const takenRequest = randomUUID();
    await store.appendToStream(existing, "no_stream", [event(1)], { requestId: takenRequest });
    // A second stream for the append that succeeds on an existing stream: on the conflict's own
    // stream it could commit first (when the batch is retried append by append) and move `actual`.
    const existingToo = uniqueId("group");
    await store.appendToStream(existingToo, "no_stream", [event(1)]);
    const [good1, good2, conflicting, nul] = Array.from({ length: 4 }, () => uniqueId("group"));
    const conflictRequest = randomUUID();
    const blocker = store.appendToStream(uniqueId("group"), "no_stream", [event(0)]);
    const attempts = await Promise.allSettled([
      store.appendToStream(good1 as string, "no_stream", [event(1), event(2)]),
      store.appendToStream(existing, 5, [event(3)], { requestId: conflictRequest }),
      store.appendToStream(conflicting as string, "no_stream", [event(4)], { requestId: takenRequest }),
      store.appendToStream(nul as string, "no_stream", [event(5, "rdm.test.v1.Bad\u0000")]),
      store.appendToStream(existingToo, 1, [event(6)]),
      store.appendToStream(good2 as string, "any", [event(7)]),
    ]);
    await blocker;
    const [first, conflict, duplicate, refused, onExisting, last] = attempts;
    expect(first).toMatchObject({ status: "fulfilled", value: { nextVersion: 2 } });
    expect(conflict).toMatchObject({ status: "rejected", reason: { name: "WrongExpectedVersion", actual: 1 } });
    expect((conflict as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedVersion);
    expect((duplicate as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateRequest);
    expect(isDataException((refused as PromiseRejectedResult).reason)).toBe(true);
    expect(onExisting).toMatchObject({ status: "fulfilled", value: { nextVersion: 2 } });
    expect(last).toMatchObject({ status: "fulfilled", value: { nextVersion: 1 } });

    expect((await store.readStream(good1 as string)).map((e) => e.data[0])).toEqual([1, 2]);
    expect((await store.readStream(existing)).map((e) => e.data[0])).toEqual([1]);
    expect((await store.readStream(existingToo)).map((e) => e.data[0])).toEqual([1, 6]);
    expect(await store.readStream(conflicting as string)).toEqual([]);
    expect(await store.readStream(nul as string)).toEqual([]);
    // The refused append's request id stays free for its retry; the taken one keeps its stream.
    expect(await store.getCommandResult(conflictRequest)).toBeNull();
    expect(await store.getCommandResult(takenRequest)).toMatchObject({ streamId: existing });
  });

  test("responses computed from each append's result are stored with it; one that throws fails only its append", async () => {
    const streams = Array.from({ length: 4 }, () => uniqueId("group"));
    const requests = streams.map(() => randomUUID());
    const blocker = store.appendToStream(uniqueId("group"), "no_stream", [event(0)]);
    const attempts = await Promise.allSettled(
      streams.map((stream, i) =>
        store.appendToStream(stream, "no_stream", [event(i), event(i)], {
          requestId: requests[i] as string,
          requestHash: `hash-${i}`,
          response: (result) => {
            if (i === 2) throw new Error("cannot encode the response");
            return new Uint8Array([i, result.nextVersion, result.positions.length]);
          },
        }),
      ),
    );
    await blocker;
    expect(attempts.map((a) => a.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect((attempts[2] as PromiseRejectedResult).reason).toMatchObject({ message: "cannot encode the response" });
    for (const i of [0, 1, 3]) {
      expect(await store.getCommandResult(requests[i] as string)).toEqual({
        requestHash: `hash-${i}`,
        response: new Uint8Array([i, 2, 2]),
        streamId: streams[i],
        streamVersion: 2,
      });
    }
    expect(await store.getCommandResult(requests[2] as string)).toBeNull();
    expect(await store.readStream(streams[2] as string)).toEqual([]);
  });

  test("a projection gets the items of a batch's appended appends in one call, in the appends' transaction", async () => {
    await pool.query("CREATE TABLE IF NOT EXISTS projected (stream_id text PRIMARY KEY, tx xid8 NOT NULL)");
    const calls: string[][] = [];
    const projection: Projection<string> = {
      async apply(client, items) {
        calls.push(items);
        await client.query(
          "INSERT INTO projected (stream_id, tx) SELECT s, pg_current_xact_id() FROM unnest($1::text[]) AS s",
          [items],
        );
      },
    };
    const taken = uniqueId("taken");
    await store.appendToStream(taken, "no_stream", [event(0)]);
    const streams = Array.from({ length: 8 }, () => uniqueId("projected"));
    const appends = [...streams, taken].map((s) =>
      store.appendToStream(s, "no_stream", [event(1)], { projection: { projection, item: s } }),
    );
    const results = await Promise.allSettled(appends);
    // The conflicting append is refused and not projected; every other one is, with its events.
    expect(results.at(-1)).toMatchObject({ status: "rejected", reason: expect.any(WrongExpectedVersion) });
    expect(calls.flat().sort()).toEqual([...streams].sort());
    expect(calls.length).toBeLessThan(streams.length);
    const { rows } = await pool.query<{ stream_id: string; same: boolean }>(
      `SELECT p.stream_id, p.tx = e.transaction_id AS same FROM projected p JOIN events e USING (stream_id)
       WHERE p.stream_id = ANY($1)`,
      [[...streams, taken]],
    );
    expect(rows.map((r) => r.stream_id).sort()).toEqual([...streams].sort());
    expect(rows.every((r) => r.same)).toBe(true);
  });

  test("a projection that throws refuses only its own append", async () => {
    const failing = uniqueId("failing");
    const projection: Projection<string> = {
      async apply(_client, items) {
        if (items.includes(failing)) throw new Error("projection refused");
      },
    };
    const streams = [uniqueId("kept"), failing, uniqueId("kept")];
    const results = await Promise.allSettled(
      streams.map((s) => store.appendToStream(s, "no_stream", [event(2)], { projection: { projection, item: s } })),
    );
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(await store.streamVersion(failing)).toBe(0);
    expect(await store.streamVersion(streams[0] as string)).toBe(1);
  });

  test("twin requests split over batches: one append, the twin gets DuplicateRequest", async () => {
    const stream = uniqueId("group");
    const requestId = randomUUID();
    const twins = await Promise.allSettled(
      Array.from({ length: 6 }, () => store.appendToStream(stream, "any", [event(1)], { requestId })),
    );
    expect(twins.filter((t) => t.status === "fulfilled")).toHaveLength(1);
    for (const t of twins) if (t.status === "rejected") expect(t.reason).toBeInstanceOf(DuplicateRequest);
    expect(await store.readStream(stream)).toHaveLength(1);
  });

  test("appends in a caller's transaction stay in it: rolled back with it, refusals leave it usable", async () => {
    const kept = uniqueId("group");
    const dropped = uniqueId("group");
    await store.appendToStream(kept, "no_stream", [event(1)]);
    await expect(
      withTransaction(pool, async (client) => {
        await store.appendToStream(dropped, "no_stream", [event(1)], { client });
        await expect(store.appendToStream(kept, 7, [event(2)], { client })).rejects.toBeInstanceOf(
          WrongExpectedVersion,
        );
        const { rows } = await client.query("SELECT count(*)::int AS n FROM events WHERE stream_id = $1", [dropped]);
        expect(rows[0].n).toBe(1);
        throw new Error("the caller changes its mind");
      }),
    ).rejects.toThrow("the caller changes its mind");
    expect(await store.readStream(dropped)).toEqual([]);
    expect(await store.streamVersion(kept)).toBe(1);
  });
});
