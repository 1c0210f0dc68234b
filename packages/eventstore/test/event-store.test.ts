import { randomUUID } from "node:crypto";
import { createTestDatabase, type TestDatabase, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import {
  DuplicateRequest,
  EventStore,
  eventStoreMigrations,
  type Migration,
  type NewEvent,
  runMigrations,
  WrongExpectedVersion,
  withTransaction,
} from "../src/index.js";

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase("eventstore");
  pool = new pg.Pool({ connectionString: db.url, max: 25 });
  await runMigrations(pool, eventStoreMigrations);
  store = new EventStore(pool);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const event = (n: number, metadata: NewEvent["metadata"] = { actor: "tester" }): NewEvent => ({
  type: "rdm.test.v1.Happened",
  data: new Uint8Array([n, n + 1]),
  metadata,
});

describe("optimistic concurrency", () => {
  test("20 concurrent appends with the same expected version: exactly one wins", async () => {
    const stream = uniqueId("release");
    await store.appendToStream(stream, "no_stream", [event(1)]);
    const attempts = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.appendToStream(stream, 1, [event(i + 10)])),
    );
    const won = attempts.filter((a) => a.status === "fulfilled");
    const lost = attempts.filter((a): a is PromiseRejectedResult => a.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(19);
    for (const l of lost) {
      expect(l.reason).toBeInstanceOf(WrongExpectedVersion);
      expect(l.reason).toMatchObject({ name: "WrongExpectedVersion", streamId: stream, expected: 1, actual: 2 });
    }
    expect(await store.streamVersion(stream)).toBe(2);
    expect((await store.readStream(stream)).map((e) => e.version)).toEqual([1, 2]);
  });

  test("20 concurrent creations with no_stream: exactly one wins", async () => {
    const stream = uniqueId("release");
    const attempts = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.appendToStream(stream, "no_stream", [event(i)])),
    );
    expect(attempts.filter((a) => a.status === "fulfilled")).toHaveLength(1);
    for (const a of attempts) {
      if (a.status === "rejected") expect(a.reason).toMatchObject({ name: "WrongExpectedVersion", actual: 1 });
    }
    expect(await store.readStream(stream)).toHaveLength(1);
  });

  test("no_stream fails on an existing stream; a version fails on a missing one; any always appends", async () => {
    const stream = uniqueId("release");
    expect(await store.streamVersion(stream)).toBe(0);
    await expect(store.appendToStream(stream, 3, [event(1)])).rejects.toMatchObject({
      name: "WrongExpectedVersion",
      expected: 3,
      actual: 0,
    });
    const first = await store.appendToStream(stream, "no_stream", [event(1), event(2)]);
    expect(first.nextVersion).toBe(2);
    expect(first.positions).toHaveLength(2);
    expect(first.positions[1]).toBeGreaterThan(first.positions[0] as number);
    await expect(store.appendToStream(stream, "no_stream", [event(3)])).rejects.toMatchObject({
      name: "WrongExpectedVersion",
      expected: "no_stream",
      actual: 2,
    });
    await expect(store.appendToStream(stream, 0, [event(3)])).rejects.toBeInstanceOf(WrongExpectedVersion);
    expect((await store.appendToStream(stream, "any", [event(3)])).nextVersion).toBe(3);
    expect((await store.appendToStream(uniqueId("other"), "any", [event(4)])).nextVersion).toBe(1);
    expect((await store.appendToStream(stream, 3, [event(5)])).nextVersion).toBe(4);
    const read = await store.readStream(stream, { fromVersion: 3 });
    expect(read.map((e) => [e.version, e.data[0]])).toEqual([
      [3, 3],
      [4, 5],
    ]);
  });

  test("an append from a transaction older than the stream's last writer is refused (keeps commit order per stream)", async () => {
    const stream = uniqueId("release");
    await expect(
      withTransaction(pool, async (client) => {
        await client.query("SELECT pg_current_xact_id()"); // this transaction now has the older id
        await store.appendToStream(stream, "any", [event(1)]); // a newer transaction commits first
        return store.appendToStream(stream, "any", [event(2)], { client });
      }),
    ).rejects.toMatchObject({ name: "WrongExpectedVersion" });
    const read = await store.readStream(stream);
    expect(read.map((e) => e.data[0])).toEqual([1]);
  });
});

test("a transaction whose failed statement was passed over is refused at COMMIT, not reported written", async () => {
  const stream = uniqueId("release");
  await expect(
    withTransaction(pool, async (client) => {
      await store.appendToStream(stream, "no_stream", [event(1)], { client });
      await client.query("SELECT 1 / 0").catch(() => undefined);
    }),
  ).rejects.toThrow("COMMIT rolled the transaction back (ROLLBACK)");
  expect(await store.readStream(stream)).toEqual([]);
});

describe("idempotent commands", () => {
  test("the same request id twice: DuplicateRequest, one event, stored response", async () => {
    const stream = uniqueId("release");
    const requestId = randomUUID();
    const options = {
      requestId,
      requestHash: "sha256:abc",
      response: (r: { nextVersion: number }) => new Uint8Array([42, r.nextVersion]),
    };
    await store.appendToStream(stream, "no_stream", [event(1)], options);
    const again = store.appendToStream(stream, "no_stream", [event(1)], options);
    await expect(again).rejects.toBeInstanceOf(DuplicateRequest);
    await expect(again).rejects.toMatchObject({ name: "DuplicateRequest", requestId });
    expect(await store.readStream(stream)).toHaveLength(1);
    expect(await store.getCommandResult(requestId)).toEqual({
      requestHash: "sha256:abc",
      response: new Uint8Array([42, 1]),
      streamId: stream,
      streamVersion: 1,
    });
    expect(await store.getCommandResult(randomUUID())).toBeNull();
  });

  test("concurrent retries of one request: one append, the rest DuplicateRequest", async () => {
    const stream = uniqueId("release");
    const requestId = randomUUID();
    const attempts = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        store.appendToStream(stream, "any", [event(1)], { requestId, response: new Uint8Array([7]) }),
      ),
    );
    expect(attempts.filter((a) => a.status === "fulfilled")).toHaveLength(1);
    for (const a of attempts) if (a.status === "rejected") expect(a.reason).toBeInstanceOf(DuplicateRequest);
    expect(await store.readStream(stream)).toHaveLength(1);
    // Appended at any version: the version after it is not known when the answer is recorded.
    expect(await store.getCommandResult(requestId)).toMatchObject({
      response: new Uint8Array([7]),
      streamVersion: null,
    });
  });

  test("a failed append leaves no command result, so the retry can run", async () => {
    const stream = uniqueId("release");
    const requestId = randomUUID();
    await expect(store.appendToStream(stream, 5, [event(1)], { requestId })).rejects.toBeInstanceOf(
      WrongExpectedVersion,
    );
    expect(await store.getCommandResult(requestId)).toBeNull();
    await store.appendToStream(stream, "no_stream", [event(1)], { requestId });
    await store.appendToStream(stream, 1, [event(2), event(3)], { requestId: `${requestId}-next` });
    expect(await store.getCommandResult(requestId)).toMatchObject({ streamId: stream, streamVersion: 1 });
    expect(await store.getCommandResult(`${requestId}-next`)).toMatchObject({ response: null, streamVersion: 3 });
  });
});

describe("reading", () => {
  test("recorded events carry what was appended plus store-assigned fields", async () => {
    const stream = uniqueId("release");
    const eventId = randomUUID();
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await store.appendToStream(stream, "no_stream", [
      {
        eventId,
        type: "rdm.release.v1.ReleaseRegistered",
        data: new Uint8Array([1, 2, 3]),
        metadata: { actor: "alice", correlationId: "c-1", traceparent },
      },
    ]);
    const [recorded] = await store.readStream(stream);
    expect(recorded).toMatchObject({
      eventId,
      type: "rdm.release.v1.ReleaseRegistered",
      streamId: stream,
      streamType: "release",
      version: 1,
      metadata: { actor: "alice", correlationId: "c-1", traceparent },
    });
    expect(Array.from(recorded?.data ?? [])).toEqual([1, 2, 3]);
    expect(recorded?.recordedAt).toBeInstanceOf(Date);
    expect(BigInt(recorded?.transactionId ?? "0")).toBeGreaterThan(0n);
    expect(recorded?.globalPosition).toBeGreaterThan(0);
  });

  test("readAll returns every event in global order", async () => {
    const before = (await store.readAll()).at(-1)?.globalPosition ?? 0;
    const streams = Array.from({ length: 8 }, () => uniqueId("release"));
    await Promise.all(
      streams.map(async (s) => {
        for (let v = 0; v < 5; v++) await store.appendToStream(s, v === 0 ? "no_stream" : v, [event(v)]);
      }),
    );
    const all = await store.readAll({ after: before });
    expect(all).toHaveLength(40);
    const positions = all.map((e) => e.globalPosition);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    for (const s of streams) {
      expect(all.filter((e) => e.streamId === s).map((e) => e.version)).toEqual([1, 2, 3, 4, 5]);
    }
    const page = await store.readAll({ after: before, limit: 10 });
    expect(page.map((e) => e.globalPosition)).toEqual(positions.slice(0, 10));
  });

  test("readAllCommitted does not pass an open transaction, then returns its events in commit order", async () => {
    const start = await store.readAllCommitted();
    const after = start.at(-1);
    const checkpoint = after ? { transactionId: after.transactionId, globalPosition: after.globalPosition } : undefined;
    const held = await pool.connect();
    try {
      await held.query("BEGIN");
      const late = uniqueId("late");
      await store.appendToStream(late, "no_stream", [event(1)], { client: held }); // lower position, still open
      const early = uniqueId("early");
      await store.appendToStream(early, "no_stream", [event(2)]); // higher position, committed
      const visible = await store.readAllCommitted({ after: checkpoint });
      expect(visible.map((e) => e.streamId)).not.toContain(early); // blocked behind the open transaction
      await held.query("COMMIT");
      // Visible once no older transaction that may append here is open (the server's own, an
      // autovacuum's, may be one a moment).
      const all = await waitFor(
        async () => {
          const read = await store.readAllCommitted({ after: checkpoint });
          const ids = read.map((e) => e.streamId);
          return ids.includes(late) && ids.includes(early) ? read : undefined;
        },
        { timeoutMs: 30_000, description: "both events committed and visible" },
      );
      // Numeric xid8 order (a text sort would put "1000" before "999").
      const order = all.map((e) => [BigInt(e.transactionId), e.globalPosition] as const);
      const sorted = [...order].sort(([ta, pa], [tb, pb]) => (ta === tb ? pa - pb : ta < tb ? -1 : 1));
      expect(order).toEqual(sorted);
      const ours = all.filter((e) => e.streamId === late || e.streamId === early).map((e) => e.streamId);
      expect(ours).toEqual([late, early]);
    } finally {
      held.release();
    }
  });

  test("readAllCommitted is not held back by a transaction open in another database of the server", async () => {
    const other = await createTestDatabase("eventstore-other");
    const elsewhere = new pg.Client({ connectionString: other.url });
    await elsewhere.connect();
    try {
      await elsewhere.query("BEGIN");
      await elsewhere.query("SELECT pg_current_xact_id()"); // holds the server's snapshot xmin
      const stream = uniqueId("beside");
      await store.appendToStream(stream, "no_stream", [event(1)]);
      // Read while that transaction stays open: it cannot append here, so it holds nothing back.
      await waitFor(async () => (await store.readAllCommitted()).some((e) => e.streamId === stream), {
        timeoutMs: 30_000,
        description: "the event read beside the other database's open transaction",
      });
    } finally {
      await elsewhere.end();
      await other.drop();
    }
  });
});

describe("migrations", () => {
  test("3 on a store of migration 2: answers recorded before keep their bytes; appends record their version", async () => {
    const other = await createTestDatabase("migration3");
    const p = new pg.Pool({ connectionString: other.url, max: 2 });
    try {
      const [first, second] = eventStoreMigrations.migrations;
      await runMigrations(p, { ...eventStoreMigrations, migrations: [first, second] as Migration[] });
      const older = new EventStore(p);
      await older.appendToStream("release-1", "no_stream", [event(1)], {
        requestId: "before",
        response: new Uint8Array([9]),
      });
      expect(await runMigrations(p, eventStoreMigrations)).toEqual([3]);
      await older.appendToStream("release-1", 1, [event(2)], { requestId: "after", response: new Uint8Array([8]) });
      expect(await older.getCommandResult("before")).toMatchObject({
        response: new Uint8Array([9]),
        streamVersion: null,
      });
      expect(await older.getCommandResult("after")).toMatchObject({ response: new Uint8Array([8]), streamVersion: 2 });
    } finally {
      await p.end();
      await other.drop();
    }
  });

  test("run twice and concurrently: applied once, no errors", async () => {
    const other = await createTestDatabase("migrations");
    const p = new pg.Pool({ connectionString: other.url, max: 10 });
    try {
      const set = {
        component: "read-model",
        migrations: [
          { version: 2, name: "add column", sql: "ALTER TABLE things ADD COLUMN label text" },
          { version: 1, name: "things", sql: "CREATE TABLE things (id text PRIMARY KEY)" },
        ],
      };
      const runs = await Promise.all(
        Array.from({ length: 6 }, (_, i) => runMigrations(p, i % 2 ? set : eventStoreMigrations)),
      );
      expect(runs.filter((r) => r.length > 0)).toHaveLength(2);
      expect(runs.flat().sort()).toEqual([1, 1, 2, 2, 3]);
      expect(await runMigrations(p, set)).toEqual([]);
      expect(await runMigrations(p, eventStoreMigrations)).toEqual([]);
      const { rows } = await p.query("SELECT component, version FROM schema_migrations ORDER BY component, version");
      expect(rows).toEqual([
        { component: "eventstore", version: 1 },
        { component: "eventstore", version: 2 },
        { component: "eventstore", version: 3 },
        { component: "read-model", version: 1 },
        { component: "read-model", version: 2 },
      ]);
      await expect(
        runMigrations(p, { component: "read-model", migrations: [{ version: 1, name: "renamed", sql: "" }] }),
      ).rejects.toMatchObject({ name: "MigrationConflict" });
    } finally {
      await p.end();
      await other.drop();
    }
  });
});
