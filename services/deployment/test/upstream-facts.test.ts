// The deployment service's consumers of the release, change and configuration topics pass by the
// events their handlers do not read (UPSTREAM_FACT_EVENTS): for every type each events file
// declares, the handler writes something exactly when the type is accepted, so passing the
// others by drops nothing. Bytes that do not decode as the type a header names are refused as
// permanent, so the event is dead-lettered at once instead of retried.
import type { DescMessage } from "@bufbuild/protobuf";
import { create, ScalarType, toBinary } from "@bufbuild/protobuf";
import { type CloudEvent, PermanentError, streamOfBody } from "@rdm/messaging";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { file_rdm_configuration_v1_events } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  applyChangeEvent,
  applyConfigurationEvent,
  applyReleaseEvent,
  UPSTREAM_FACT_EVENTS,
} from "../src/consumers/upstream-facts.js";
import type { Queryable } from "../src/store/tables.js";

/** Counts the statements a handler sends; answers each with no rows. */
function recording() {
  const statements: string[] = [];
  const db = {
    query: async (sql: string) => {
      statements.push(sql);
      return { rows: [], rowCount: 0 };
    },
  } as unknown as Queryable;
  return { db, statements };
}

function eventOf(schema: DescMessage): CloudEvent {
  // Ids set and flags on, so a handler that needs one (an id, a quorum reached) is not stopped by an empty message.
  const fields = filled(schema);
  // Under the stream its body is about, as the services publish.
  const subject = streamOfBody(schema, create(schema, fields as never)) ?? "s";
  return {
    id: "e1",
    type: schema.typeName,
    source: "rdm/test",
    subject,
    time: new Date(),
    data: toBinary(
      schema,
      create(schema, { ...fields, metadata: { eventId: "e1", streamId: subject, streamVersion: 1n } } as never),
    ),
  };
}

function filled(schema: DescMessage): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const f of schema.fields) {
    if (f.fieldKind !== "scalar") continue;
    if (f.scalar === ScalarType.BOOL) fields[f.localName] = true;
    else if (f.localName.endsWith("Id")) fields[f.localName] = "11111111-1111-4111-8111-111111111111";
  }
  return fields;
}

test.each([
  ["release", file_rdm_release_v1_events.messages, applyReleaseEvent, UPSTREAM_FACT_EVENTS.release],
  ["change", file_rdm_change_v1_events.messages, applyChangeEvent, UPSTREAM_FACT_EVENTS.change],
  [
    "configuration",
    file_rdm_configuration_v1_events.messages,
    applyConfigurationEvent,
    UPSTREAM_FACT_EVENTS.configuration,
  ],
] as const)(
  "the %s topic: a handler writes for exactly the types its consumer accepts",
  async (_, messages, apply, accepted) => {
    const writes: string[] = [];
    for (const schema of messages) {
      const { db, statements } = recording();
      await apply(eventOf(schema), db);
      if (statements.length > 0) writes.push(schema.typeName);
    }
    expect(new Set(writes)).toEqual(accepted);
  },
);

test.each([
  ["release", applyReleaseEvent, UPSTREAM_FACT_EVENTS.release],
  ["change", applyChangeEvent, UPSTREAM_FACT_EVENTS.change],
  ["configuration", applyConfigurationEvent, UPSTREAM_FACT_EVENTS.configuration],
] as const)(
  "the %s topic: an undecodable event of an accepted type is a permanent failure",
  async (_, apply, accepted) => {
    // A field tag with wire type 7, which no protobuf encoding has.
    const garbage = new TextEncoder().encode("garbage");
    for (const type of accepted) {
      const { db, statements } = recording();
      const event = { ...eventOf(file_rdm_release_v1_events.messages[0] as DescMessage), type, data: garbage };
      await expect(apply(event, db)).rejects.toThrow(PermanentError);
      expect(statements).toEqual([]);
    }
  },
);
