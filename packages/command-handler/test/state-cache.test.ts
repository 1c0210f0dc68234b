import { create } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import type { EventStore } from "@rdm/eventstore";
import { type ReleaseAbandoned, ReleaseAbandonedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { type TestDatabase, uniqueId } from "@rdm/testkit";
import type pg from "pg";
import { type Aggregate, CommandHandler, RuleViolation } from "../src/index.js";
import { addNote, codec, type NoteEvent, type Notes, notes, notesStore, origin, stamped } from "./notes.js";

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;

beforeAll(async () => {
  ({ db, pool, store } = await notesStore("command_state_cache"));
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const typesOf = async (streamId: string) => (await store.readStream(streamId)).map((e) => e.type);

/** The notes aggregate, counting the snapshot reads: one for each command that found no cached state. */
function counted() {
  const reads = { count: 0 };
  const aggregate: Aggregate<Notes, NoteEvent> = {
    ...notes,
    snapshots: {
      read: async () => {
        reads.count++;
        return undefined;
      },
    },
  };
  return { reads, aggregate };
}

describe("CommandHandler's state of recently commanded streams", () => {
  test("a command on a stream it commanded before folds only the newer events, its own and other writers'", async () => {
    const handler = new CommandHandler({ store, codec });
    const { reads, aggregate } = counted();
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "a", { aggregate }));
    // Another process appends meanwhile: the next decision must see it.
    await store.appendToStream(streamId, 1, [codec.encode(stamped("other"))], { streamType: "notes" });
    const answer = await handler.handle(origin(), addNote(streamId, "b", { aggregate }));
    expect(answer.value).toBe("a,other,b");
    // evolved counts the events folded into the state: three, each once (none folded twice or
    // lost), seen through a no-op (a note already there).
    const third = await handler.handle(origin(), {
      ...addNote(streamId, "a", { aggregate }),
      respond: ({ after }: { after: Notes }) => create(StringValueSchema, { value: `${after.evolved}` }),
    });
    expect(third.value).toBe("3");
    expect(reads.count).toBe(1);
  });

  test("a stream rewritten behind it (fewer events than it knew) is read again and the command succeeds", async () => {
    const handler = new CommandHandler({ store, codec, retry: { maxAttempts: 2, jitterMs: 1 } });
    const { reads, aggregate } = counted();
    const streamId = uniqueId("notes");
    for (const note of ["a", "b"]) await handler.handle(origin(), addNote(streamId, note, { aggregate }));
    await pool.query("DELETE FROM events WHERE stream_id = $1", [streamId]);
    await pool.query("DELETE FROM streams WHERE stream_id = $1", [streamId]);
    const answer = await handler.handle(origin(), addNote(streamId, "c", { aggregate }));
    expect(answer.value).toBe("c");
    expect(reads.count).toBe(2);
  });

  test("keeps at most cachedStreams streams, the most recently commanded", async () => {
    const handler = new CommandHandler({ store, codec, cachedStreams: 2 });
    const { reads, aggregate } = counted();
    const [s1, s2, s3] = [uniqueId("notes"), uniqueId("notes"), uniqueId("notes")] as [string, string, string];
    for (const streamId of [s1, s2, s3]) await handler.handle(origin(), addNote(streamId, "a", { aggregate }));
    expect(reads.count).toBe(3);
    await handler.handle(origin(), addNote(s3, "b", { aggregate }));
    expect(reads.count).toBe(3);
    await handler.handle(origin(), addNote(s1, "b", { aggregate }));
    expect(reads.count).toBe(4);
  });

  test("under jest a cached state is frozen: an evolver that changes the state it is given throws", async () => {
    const handler = new CommandHandler({ store, codec });
    const inPlace: Aggregate<Notes, NoteEvent> = {
      ...notes,
      evolve: (state, event) => {
        state.notes.push(event.$typeName === "rdm.release.v1.ReleaseAbandoned" ? event.reason : "");
        return state;
      },
    };
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "a", { aggregate: inPlace }));
    await expect(handler.handle(origin(), addNote(streamId, "b", { aggregate: inPlace }))).rejects.toThrow(TypeError);
  });

  test("a command in the caller's transaction leaves no state behind: its rollback is not cached", async () => {
    const handler = new CommandHandler({ store, codec });
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "a"));
    const tx = await pool.connect();
    try {
      await tx.query("BEGIN");
      await handler.handleIn(tx, { actor: "system:job", requestId: "" }, addNote(streamId, "b"));
      await tx.query("ROLLBACK");
    } finally {
      tx.release();
    }
    const answer = await handler.handle(origin(), addNote(streamId, "c"));
    expect(answer.value).toBe("a,c");
    expect((await store.readStream(streamId)).map((r) => (codec.decode(r) as ReleaseAbandoned).reason)).toEqual([
      "a",
      "c",
    ]);
  });
});

describe("CommandHandler's decisions without a read (a cached state, or a new stream)", () => {
  /** The handler, counting the reads of a stream with a request id's answer. */
  function watched() {
    const read = { count: 0 };
    const counting: EventStore = Object.create(store);
    counting.readStreamWithCommandResult = (...args) => {
      read.count++;
      return store.readStreamWithCommandResult(...args);
    };
    return { handler: new CommandHandler({ store: counting, codec, retry: { jitterMs: 1 } }), read };
  }

  const note = (streamId: string, reason: string) => create(ReleaseAbandonedSchema, { releaseId: streamId, reason });

  test("commands on a stream this process commanded last read nothing before their appends", async () => {
    const { handler, read } = watched();
    const streamId = uniqueId("notes");
    for (const n of ["a", "b", "c"]) await handler.handle(origin(), addNote(streamId, n));
    expect(read.count).toBe(1);
    expect(await typesOf(streamId)).toHaveLength(3);
  });

  test("a refusal or a no-op on a state behind the stream is decided again on a read", async () => {
    const { handler } = watched();
    const streamId = uniqueId("notes");
    await handler.handle(origin(), addNote(streamId, "x"));
    // Another process writes "ready" and then "y": the cached state [x] has neither.
    for (const reason of ["ready", "y"])
      await store.appendToStream(streamId, "any", [codec.encode(stamped(reason))], { streamType: "notes" });
    const needsReady = await handler.handle(origin(), {
      ...addNote(streamId, "go"),
      decide: (state: Notes) => {
        if (!state.notes.includes("ready"))
          throw new RuleViolation("FAILED_PRECONDITION", "notes.ready", "not ready", { subject: streamId });
        return [note(streamId, "go")];
      },
    });
    expect(needsReady.value).toBe("x,ready,y,go");
    await store.appendToStream(streamId, "any", [codec.encode(stamped("z"))], { streamType: "notes" });
    // "go" again unless it is the last note: the cached state says it is, the stream that it is not.
    const unlessLast = await handler.handle(origin(), {
      ...addNote(streamId, "go"),
      decide: (state: Notes) => (state.notes.at(-1) === "go" ? [] : [note(streamId, "go")]),
    });
    expect(unlessLast.value).toBe("x,ready,y,go,z,go");
  });

  test("a retried request decided without a read gets the first answer and appends nothing", async () => {
    const { handler } = watched();
    const streamId = uniqueId("notes");
    const always = (reason: string) => ({ ...addNote(streamId, reason), decide: () => [note(streamId, reason)] });
    const retried = origin();
    const first = await handler.handle(retried, always("a"));
    expect(await handler.handle(retried, always("a"))).toEqual(first);
    expect(await typesOf(streamId)).toHaveLength(1);
  });

  test("a new stream is decided without a read; an id taken after all is decided again on what it holds", async () => {
    const { handler, read } = watched();
    const streamId = uniqueId("notes");
    expect((await handler.handle(origin(), addNote(streamId, "a", { newStream: true }))).value).toBe("a");
    expect(read.count).toBe(0);
    // Another process with the same id: refused by the append, then decided on a read.
    const other = watched();
    expect((await other.handler.handle(origin(), addNote(streamId, "b", { newStream: true }))).value).toBe("a,b");
    expect(other.read.count).toBe(1);
  });
});
