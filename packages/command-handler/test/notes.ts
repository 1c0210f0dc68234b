// The notes aggregate of the command handler's tests: a note per event, refused once three are taken.
import { randomUUID } from "node:crypto";
import { create, createRegistry } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import {
  file_rdm_release_v1_events,
  type ReleaseAbandoned,
  ReleaseAbandonedSchema,
  type ReleaseClosed,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
import { type Aggregate, type ClientCommand, type CommandOrigin, eventCodec, RuleViolation } from "../src/index.js";

export type NoteEvent = ReleaseAbandoned | ReleaseClosed;
export interface Notes {
  notes: string[];
  evolved: number;
}
export const notes: Aggregate<Notes, NoteEvent> = {
  streamType: "notes",
  initialState: () => ({ notes: [], evolved: 0 }),
  evolve: (state, event) => ({
    notes: event.$typeName === "rdm.release.v1.ReleaseAbandoned" ? [...state.notes, event.reason] : state.notes,
    evolved: state.evolved + 1,
  }),
};
export const codec = eventCodec<NoteEvent>(createRegistry(file_rdm_release_v1_events), "test");

/** A database with the event store's tables and a `noted` table for projections. */
export async function notesStore(name: string) {
  const db = await createTestDatabase(name);
  const pool = new pg.Pool({ connectionString: db.url, max: 20 });
  await runMigrations(pool, eventStoreMigrations);
  await pool.query("CREATE TABLE noted (stream_id text, note text UNIQUE)");
  return { db, pool, store: new EventStore(pool) };
}

export const origin = (requestId: string = randomUUID()): CommandOrigin => ({
  actor: "alice",
  groups: ["cab"],
  requestId,
});

/** Adds `note` unless three are taken or it is there already (a no-op). */
export function addNote(
  streamId: string,
  note: string,
  extra: Partial<ClientCommand<Notes, NoteEvent, typeof StringValueSchema>> = {},
) {
  return {
    aggregate: notes,
    streamId,
    decide: (state: Notes) => {
      if (state.notes.includes(note)) return [];
      if (state.notes.length >= 3)
        throw new RuleViolation("FAILED_PRECONDITION", "notes.full", "three notes at most", { subject: streamId });
      return [create(ReleaseAbandonedSchema, { releaseId: streamId, reason: note })];
    },
    response: StringValueSchema,
    respond: ({ after }: { after: Notes }) => create(StringValueSchema, { value: after.notes.join(",") }),
    requestHash: `add:${note}`,
    ...extra,
  };
}

/** A note from another writer, stamped as a command would. */
export const stamped = (reason: string): NoteEvent =>
  create(ReleaseAbandonedSchema, { reason, metadata: { eventId: randomUUID(), actor: "other" } });
