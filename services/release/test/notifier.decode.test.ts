// The notifier's decoding of an event off a topic: a type no published schema names passes by,
// bytes that do not decode as the type named are a permanent failure (dead letter, no retry).
import { create, toBinary } from "@bufbuild/protobuf";
import { type CloudEvent, PermanentError } from "@rdm/messaging";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { decodeNotifiable } from "../src/notifier/payload.js";

const event = (type: string, data: Uint8Array): CloudEvent => ({
  id: "e1",
  type,
  source: "rdm/test",
  subject: "r1",
  time: new Date(),
  data,
});

test("decodes a published type, passes an unknown one by and refuses undecodable bytes as permanent", () => {
  const registered = create(ReleaseRegisteredSchema, {
    releaseId: "r1",
    title: "Payments",
    metadata: { eventId: "e1", streamId: "r1", streamVersion: 1n },
  });
  const decoded = decodeNotifiable(
    event(ReleaseRegisteredSchema.typeName, toBinary(ReleaseRegisteredSchema, registered)),
  );
  expect(decoded?.schema).toBe(ReleaseRegisteredSchema);
  expect(decoded?.message).toMatchObject({ releaseId: "r1", title: "Payments" });
  expect(decodeNotifiable(event("rdm.unknown.v1.Nothing", new Uint8Array([1])))).toBeUndefined();
  // A field tag with wire type 7, which no protobuf encoding has.
  const garbage = event(ReleaseRegisteredSchema.typeName, new TextEncoder().encode("garbage"));
  expect(() => decodeNotifiable(garbage)).toThrow(PermanentError);
  expect(() => decodeNotifiable(garbage)).toThrow(/^cannot decode rdm\.release\.v1\.ReleaseRegistered: /);
});
