import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { EventStore, WrongExpectedVersion, withTransaction } from "@rdm/eventstore";
import {
  type ReleaseAbandoned,
  ReleaseAbandonedSchema,
  type ReleaseClosed,
  ReleaseClosedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { type TestDatabase, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { type Aggregate, CommandHandler, isRuleViolation, RuleViolation } from "../src/index.js";
import { addNote, codec, type NoteEvent, type Notes, notes, notesStore, origin, stamped } from "./notes.js";

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;
let handler: CommandHandler<NoteEvent>;
const NOW = new Date("2026-03-01T10:00:00Z");

beforeAll(async () => {
  ({ db, pool, store } = await notesStore("command_handler"));
  handler = new CommandHandler({ store, codec, clock: () => NOW });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const typesOf = async (streamId: string) => (await store.readStream(streamId)).map((e) => e.type);

describe("CommandHandler.handle", () => {
  test("stamps every event's metadata, appends the policy's events and projects in the same transaction", async () => {
    const streamId = uniqueId("notes");
    const requestId = randomUUID();
    const answer = await handler.handle(
      { ...origin(requestId), traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      addNote(streamId, "a", {
        policy: (decided, before, ctx) => [
          create(ReleaseClosedSchema, { releaseId: `${decided.length}:${before.notes.length}:${ctx.groups.join()}` }),
        ],
        project: async (tx, outcome) => {
          await tx.query("INSERT INTO noted VALUES ($1, $2)", [outcome.streamId, outcome.after.notes.join()]);
        },
      }),
    );
    expect(answer.value).toBe("a");
    const recorded = await store.readStream(streamId);
    expect(recorded.map((e) => [e.type, e.version, e.streamType])).toEqual([
      ["rdm.release.v1.ReleaseAbandoned", 1, "notes"],
      ["rdm.release.v1.ReleaseClosed", 2, "notes"],
    ]);
    const events = recorded.map((r) => codec.decode(r));
    expect((events[1] as ReleaseClosed).releaseId).toBe("1:0:cab");
    events.forEach((event, index) => {
      expect(event.metadata).toMatchObject({
        eventId: recorded[index]?.eventId,
        actor: "alice",
        correlationId: requestId,
        causationId: requestId,
        requestId,
        streamId,
        streamVersion: BigInt(index + 1),
        occurredAt: { seconds: BigInt(NOW.getTime() / 1000) },
      });
    });
    expect(recorded[0]?.metadata.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect((await pool.query("SELECT note FROM noted WHERE stream_id = $1", [streamId])).rows).toEqual([{ note: "a" }]);
  });

  test("a retried request id gets the first answer and appends nothing; another body under it is refused", async () => {
    const streamId = uniqueId("notes");
    const requestId = randomUUID();
    await handler.handle(origin(requestId), addNote(streamId, "a"));
    await handler.handle(origin(), addNote(streamId, "b"));
    const retried = await handler.handle(origin(requestId), addNote(streamId, "a"));
    expect(retried.value).toBe("a");
    expect(await typesOf(streamId)).toHaveLength(2);
    const reused = await handler.handle(origin(requestId), addNote(streamId, "c")).catch((e: unknown) => e);
    expect(isRuleViolation(reused, "request.idempotency")).toBe(true);
    expect(reused).toMatchObject({
      code: "FAILED_PRECONDITION",
      conditions: [
        {
          rule: "request.idempotency",
          subject: requestId,
          description: "request_id reused by another caller or with a different request",
        },
      ],
    });
  });

  test("an answer recorded as bytes is made once: the caller gets the one recorded", async () => {
    const streamId = uniqueId("notes");
    const made: unknown[] = [];
    const respond = ({ after }: { after: Notes }) => {
      const answer = create(StringValueSchema, { value: after.notes.join(",") });
      made.push(answer);
      return answer;
    };
    const requestId = randomUUID();
    const answer = await handler.handle(origin(requestId), addNote(streamId, "a", { respond }));
    expect(made).toEqual([answer]);
    expect(made[0]).toBe(answer);
    expect((await handler.handle(origin(requestId), addNote(streamId, "a", { respond }))).value).toBe("a");
  });

  test("concurrent commands on one stream are re-decided on fresh state until each commits", async () => {
    const streamId = uniqueId("notes");
    const answers = await Promise.all(["a", "b", "c"].map((note) => handler.handle(origin(), addNote(streamId, note))));
    expect(answers.map((a) => a.value.split(",").length).sort()).toEqual([1, 2, 3]);
    const recorded = await store.readStream(streamId);
    expect(recorded.map((e) => e.version)).toEqual([1, 2, 3]);
    // The fourth is refused on the state the others left, not on the state it first read.
    await expect(handler.handle(origin(), addNote(streamId, "d"))).rejects.toMatchObject({ rule: "notes.full" });
  });

  test("in one process, commands on one stream take turns: none is decided twice", async () => {
    const streamId = uniqueId("notes");
    const once = new CommandHandler({ store, codec, retry: { maxAttempts: 1 } });
    let decisions = 0;
    const counted = (note: string) => {
      const command = addNote(streamId, note);
      const decide = (...args: Parameters<typeof command.decide>) => {
        decisions++;
        return command.decide(...args);
      };
      return { ...command, decide };
    };
    const answers = await Promise.all(["a", "b", "c"].map((note) => once.handle(origin(), counted(note))));
    expect(answers.map((a) => a.value)).toEqual(["a", "a,b", "a,b,c"]);
    expect(decisions).toBe(3);
  });

  test("a conflict on every attempt ends in WrongExpectedVersion after the limit", async () => {
    const streamId = uniqueId("notes");
    const limited = new CommandHandler({ store, codec, retry: { maxAttempts: 3, jitterMs: 1 } });
    let decisions = 0;
    const error = await limited
      .handle(
        origin(),
        addNote(streamId, "a", {
          decide: async (state) => {
            decisions++;
            // Another writer appends to the stream between this decision's read and its append.
            await store.appendToStream(streamId, "any", [codec.encode(stamped(`other-${decisions}`))], {
              streamType: "notes",
            });
            return [create(ReleaseAbandonedSchema, { releaseId: streamId, reason: `mine-${state.notes.length}` })];
          },
        }),
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WrongExpectedVersion);
    expect(decisions).toBe(3);
    expect(
      (await store.readStream(streamId)).map((r) => codec.decode(r) as ReleaseAbandoned).map((e) => e.reason),
    ).toEqual(["other-1", "other-2", "other-3"]);
  });

  test("twin requests (same request id in flight together) append once and answer alike", async () => {
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "a"));
    await handler.handle(origin(), addNote(streamId, "b"));
    const requestId = randomUUID();
    // The third note fills the stream: a twin deciding on the state after it would be refused.
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => handler.handle(origin(requestId), addNote(streamId, "c"))),
    );
    expect(new Set(answers.map((a) => a.value))).toEqual(new Set(["a,b,c"]));
    expect(await typesOf(streamId)).toHaveLength(3);
  });

  test("a refusal appends nothing and records nothing, so the request id stays usable", async () => {
    const streamId = uniqueId("notes");
    for (const note of ["a", "b", "c"]) await handler.handle(origin(), addNote(streamId, note));
    const requestId = randomUUID();
    await expect(handler.handle(origin(requestId), addNote(streamId, "d"))).rejects.toBeInstanceOf(RuleViolation);
    expect(await store.getCommandResult(requestId)).toBeNull();
    expect(await typesOf(streamId)).toHaveLength(3);
  });

  test("an event larger than maxEventBytes is refused before anything is appended, grouped or not", async () => {
    const small = new CommandHandler({ store, codec, clock: () => NOW, maxEventBytes: 1000 });
    for (const prepare of [undefined, async () => undefined]) {
      const streamId = uniqueId("notes");
      const requestId = randomUUID();
      const tooLarge = addNote(streamId, "x".repeat(1000), prepare ? { prepare } : {});
      const refusal = await small.handle(origin(requestId), tooLarge).catch((error: unknown) => error);
      expect(isRuleViolation(refusal, "event.too_large") && refusal.code).toBe("INVALID_ARGUMENT");
      expect([await typesOf(streamId), await store.getCommandResult(requestId)]).toEqual([[], null]);
      await small.handle(origin(), addNote(streamId, "x".repeat(700)));
      expect(await typesOf(streamId)).toEqual(["rdm.release.v1.ReleaseAbandoned"]);
    }
  });

  test("the state kept for the next command is the one the store gives back", async () => {
    // A lone surrogate: UTF-8 carries it as U+FFFD, so the note as decided is not the note stored.
    const lone = "x\uD800";
    let evolved = 0;
    const counted: Aggregate<Notes, NoteEvent> = {
      ...notes,
      evolve: (state, event) => {
        evolved++;
        return notes.evolve(state, event);
      },
    };
    const streamId = uniqueId("notes");
    const add = (note: string) => ({ ...addNote(streamId, note), aggregate: counted });
    expect((await handler.handle(origin(), add(lone))).value).toBe(lone);
    const next = (await handler.handle(origin(), add("b"))).value;
    const cold = new CommandHandler({ store, codec, clock: () => NOW });
    expect([next, (await cold.load(pool, { aggregate: notes, streamId })).state.notes.join(",")]).toEqual([
      "x\uFFFD,b",
      "x\uFFFD,b",
    ]);
    // An event that reads back as decided: the decided state is kept, not folded once more.
    evolved = 0;
    await handler.handle(origin(), add("c"));
    expect(evolved).toBe(1);
  });

  test("a decision of no events records its answer, and a retry gets that answer", async () => {
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "a"));
    const requestId = randomUUID();
    expect((await handler.handle(origin(requestId), addNote(streamId, "a"))).value).toBe("a");
    await handler.handle(origin(), addNote(streamId, "b"));
    expect((await handler.handle(origin(requestId), addNote(streamId, "a"))).value).toBe("a");
    expect(await store.getCommandResult(requestId)).toMatchObject({ requestHash: "add:a", streamId });
  });

  test("more commands in flight than pooled connections: each attempt needs only its transaction's connection", async () => {
    const small = new pg.Pool({ connectionString: db.url, max: 2 });
    try {
      const narrow = new CommandHandler({ store: new EventStore(small), codec });
      const streams = Array.from({ length: 8 }, () => uniqueId("notes"));
      const answers = await Promise.all(
        streams.flatMap((streamId) => ["a", "b"].map((note) => narrow.handle(origin(), addNote(streamId, note)))),
      );
      expect(answers).toHaveLength(16);
      for (const streamId of streams) expect(await typesOf(streamId)).toHaveLength(2);
    } finally {
      await small.end();
    }
  });

  test("with retryOn, a unique key taken meanwhile makes it decide again", async () => {
    const streamId = uniqueId("notes");
    const taken = uniqueId("note");
    const retrying = new CommandHandler({
      store,
      codec,
      retry: { retryOn: (e) => (e as { code?: string }).code === "23505" },
    });
    let attempts = 0;
    const answer = await retrying.handle(
      origin(),
      addNote(streamId, "a", {
        project: async (tx) => {
          attempts++;
          // The first attempt collides with a row another writer committed; the second avoids it.
          if (attempts === 1) await pool.query("INSERT INTO noted VALUES ('other', $1)", [taken]);
          await tx.query("INSERT INTO noted VALUES ($1, $2)", [streamId, attempts === 1 ? taken : `${taken}-2`]);
        },
      }),
    );
    expect(answer.value).toBe("a");
    expect(attempts).toBe(2);
    expect(await typesOf(streamId)).toHaveLength(1);
  });

  test("two commands that deadlock on each other's locks: the one PostgreSQL aborts is decided again", async () => {
    // Each first attempt takes one lock, waits until the other has taken its own, then asks for
    // the other's: PostgreSQL aborts one of them (40P01).
    const lock = (key: string) => `hashtext('${key}')`;
    const [first, second] = [lock(uniqueId("deadlock")), lock(uniqueId("deadlock"))];
    let holding = 0;
    const attempts = [0, 0];
    const lockingBoth = (i: number, mine: string, theirs: string) => async (tx: pg.PoolClient) => {
      attempts[i] = (attempts[i] ?? 0) + 1;
      await tx.query(`SELECT pg_advisory_xact_lock(${mine})`);
      if (attempts[i] === 1) {
        holding++;
        await waitFor(() => holding === 2, { description: "both holding their first lock" });
      }
      await tx.query(`SELECT pg_advisory_xact_lock(${theirs})`);
    };
    const [a, b] = [uniqueId("notes"), uniqueId("notes")];
    const answers = await Promise.all([
      handler.handle(origin(), addNote(a, "a", { prepare: lockingBoth(0, first, second) })),
      handler.handle(origin(), addNote(b, "b", { prepare: lockingBoth(1, second, first) })),
    ]);
    expect(answers.map((answer) => answer.value)).toEqual(["a", "b"]);
    expect([...attempts].sort()).toEqual([1, 2]);
    expect([await typesOf(a), await typesOf(b)].map((types) => types.length)).toEqual([1, 1]);
  });
});

describe("CommandHandler.handleIn and load", () => {
  test("runs in the caller's transaction: its rollback takes the events with it", async () => {
    const streamId = uniqueId("notes");
    await expect(
      withTransaction(pool, async (tx) => {
        const outcome = await handler.handleIn(tx, { actor: "system:job", requestId: "" }, addNote(streamId, "a"));
        expect(outcome).toMatchObject({ version: 1, after: { notes: ["a"] } });
        expect(outcome.events[0]?.metadata).toMatchObject({ actor: "system:job", requestId: "", streamVersion: 1n });
        throw new Error("caller fails later");
      }),
    ).rejects.toThrow("caller fails later");
    expect(await typesOf(streamId)).toEqual([]);
  });

  test("locks the stream before reading it: a command appending meanwhile waits and is decided again after", async () => {
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "a"));
    let meanwhile: Promise<unknown> = Promise.resolve();
    let settled = false;
    const outcome = await withTransaction(pool, async (tx) => {
      // As a consumer's transaction: it has written before the command (its handled marker).
      await tx.query("INSERT INTO noted VALUES ($1, 'marker')", [streamId]);
      return handler.handleIn(
        tx,
        { actor: "system:consumer", requestId: "" },
        {
          ...addNote(streamId, "b"),
          decide: async () => {
            // Another command on the stream, between this one's read and its append: it waits on
            // the stream's row (before the lock, it committed first and this append lost).
            meanwhile = handler.handle(origin(), addNote(streamId, "c")).finally(() => {
              settled = true;
            });
            await waitFor(
              async () =>
                settled ||
                (
                  await pool.query(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                  )
                ).rowCount === 1,
              { description: "the other command waiting on the stream, or done" },
            );
            return [create(ReleaseAbandonedSchema, { releaseId: streamId, reason: "b" })];
          },
        },
      );
    });
    expect(outcome.version).toBe(2);
    await meanwhile;
    expect((await store.readStream(streamId)).map((e) => codec.decode(e))).toMatchObject([
      { reason: "a" },
      { reason: "b", metadata: { actor: "system:consumer" } },
      { reason: "c" },
    ]);
  });

  test("loads from a snapshot and folds only the events after it", async () => {
    const streamId = uniqueId("notes");
    for (const note of ["a", "b"]) await handler.handle(origin(), addNote(streamId, note));
    const withSnapshots: Aggregate<Notes, NoteEvent> = {
      ...notes,
      snapshots: { read: async () => ({ state: { notes: ["from-snapshot"], evolved: 0 }, version: 1 }) },
    };
    const loaded = await withTransaction(pool, (tx) => handler.load(tx, { aggregate: withSnapshots, streamId }));
    expect(loaded).toEqual({ streamId, version: 2, state: { notes: ["from-snapshot", "b"], evolved: 1 } });
  });
});

describe("answers that are the stream's state (answerIsState)", () => {
  const asState = (streamId: string, note: string, extra = {}) =>
    addNote(streamId, note, { answerIsState: true, ...extra });
  const recordedRow = async (requestId: string) =>
    (await pool.query("SELECT response, stream_version FROM command_results WHERE request_id = $1", [requestId]))
      .rows[0];

  test("are recorded as the stream's version, and a retry after later commands gets the state at it", async () => {
    const streamId = uniqueId("notes");
    const requestId = randomUUID();
    expect((await handler.handle(origin(requestId), asState(streamId, "a"))).value).toBe("a");
    expect((await handler.handle(origin(), asState(streamId, "b"))).value).toBe("a,b");
    expect(await recordedRow(requestId)).toEqual({ response: null, stream_version: "1" });
    // Rebuilt from the stream: by a handler that kept the stream's state (at version 2) and by a
    // fresh one, grouped and in a transaction (a command with `prepare`).
    const fresh = new CommandHandler({ store, codec });
    const prepare = async () => {};
    for (const [h, extra] of [
      [handler, {}],
      [fresh, {}],
      [new CommandHandler({ store, codec }), { prepare }],
    ] as const)
      expect((await h.handle(origin(requestId), asState(streamId, "a", extra))).value).toBe("a");
    expect(await typesOf(streamId)).toHaveLength(2);
    const reused = await fresh.handle(origin(requestId), asState(streamId, "c")).catch((e: unknown) => e);
    expect(isRuleViolation(reused, "request.idempotency")).toBe(true);
  });

  test("a no-op records the version it read; an answer recorded as bytes is still answered with them", async () => {
    const streamId = uniqueId("notes");
    const [noOp, asBytes] = [randomUUID(), randomUUID()];
    await handler.handle(origin(asBytes), addNote(streamId, "a"));
    await handler.handle(origin(), asState(streamId, "b"));
    expect((await handler.handle(origin(noOp), asState(streamId, "a"))).value).toBe("a,b");
    expect(await recordedRow(noOp)).toEqual({ response: null, stream_version: "2" });
    await handler.handle(origin(), asState(streamId, "c"));
    const fresh = new CommandHandler({ store, codec });
    expect((await fresh.handle(origin(noOp), asState(streamId, "a"))).value).toBe("a,b");
    expect((await fresh.handle(origin(asBytes), asState(streamId, "a"))).value).toBe("a");
  });

  test("are rebuilt from a snapshot not past the recorded version, else from the stream's start", async () => {
    const streamId = uniqueId("notes");
    const [first, third] = [randomUUID(), randomUUID()];
    await handler.handle(origin(first), asState(streamId, "a"));
    await handler.handle(origin(), asState(streamId, "b"));
    await handler.handle(origin(third), asState(streamId, "c"));
    const withSnapshots: Aggregate<Notes, NoteEvent> = {
      ...notes,
      snapshots: { read: async () => ({ state: { notes: ["snapshot"], evolved: 0 }, version: 2 }) },
    };
    const fresh = new CommandHandler({ store, codec });
    const retry = (requestId: string, note: string) =>
      fresh.handle(origin(requestId), asState(streamId, note, { aggregate: withSnapshots }));
    expect((await retry(third, "c")).value).toBe("snapshot,c");
    expect((await retry(first, "a")).value).toBe("a");
  });
});
