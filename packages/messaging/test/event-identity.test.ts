import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { file_rdm_change_v1_events as changeEvents } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import {
  ArtifactRegisteredSchema,
  BaselineDeploymentRecordedSchema,
  file_rdm_configuration_v1_events as configurationEvents,
  RelationshipAddedSchema,
  RelationshipRemovedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import {
  file_rdm_deployment_v1_events as deploymentEvents,
  EnvironmentChangedSchema,
  EnvironmentRegisteredSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  file_rdm_notification_v1_events as notificationEvents,
  SubscriptionCreatedSchema,
} from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import {
  ReleaseModelVersionCreatedSchema,
  ReleaseRegisteredSchema,
  file_rdm_release_v1_events as releaseEvents,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  type CloudEvent,
  checkEventIdentity,
  decodeEvent,
  type EventIdentity,
  PermanentError,
  streamOfBody,
} from "../src/index.js";

const envelope: CloudEvent = {
  id: "0b7e6c2a-6f1e-4d5e-9a0b-2b1f3c4d5e6f",
  type: "rdm.configuration.v1.ArtifactRegistered",
  source: "rdm/configuration",
  subject: "artifact-42",
  time: new Date("2026-12-05T10:00:00Z"),
  data: new Uint8Array(),
  extensions: { streamversion: "3" },
};
const metadata: EventIdentity = { eventId: envelope.id, streamId: "artifact-42", streamVersion: 3n };
const refusal = (m: EventIdentity | undefined, e: CloudEvent = envelope) => {
  try {
    checkEventIdentity(e, m);
  } catch (error) {
    expect(error).toBeInstanceOf(PermanentError);
    return (error as Error).message;
  }
  return undefined;
};

test("an event whose body names what its envelope names passes, with or without ce_streamversion", () => {
  expect(refusal(metadata)).toBeUndefined();
  expect(refusal(metadata, { ...envelope, extensions: {} })).toBeUndefined();
});

test("an empty body (no metadata) is refused: it would project a row with an empty id", () => {
  expect(refusal(undefined)).toBe(
    "rdm.configuration.v1.ArtifactRegistered does not match its envelope: it has no metadata",
  );
  expect(refusal({ eventId: "", streamId: "", streamVersion: 0n })).toBe(
    "rdm.configuration.v1.ArtifactRegistered does not match its envelope: " +
      `metadata.event_id "" is not ce_id "${envelope.id}"; ` +
      'metadata.stream_id "" is not ce_subject "artifact-42"; metadata.stream_version is not 1 or more',
  );
});

test("a body replayed under another subject, id or stream version is refused, naming each difference", () => {
  expect(refusal({ ...metadata, streamId: "artifact-7" })).toContain(
    'metadata.stream_id "artifact-7" is not ce_subject "artifact-42"',
  );
  expect(refusal({ ...metadata, eventId: "another" })).toContain(`metadata.event_id "another" is not ce_id`);
  expect(refusal({ ...metadata, streamVersion: 4n })).toContain(
    'metadata.stream_version 4 is not ce_streamversion "3"',
  );
});

test("a body that breaks the input rules (an instant past 9999, a control character) is refused, naming the fields", () => {
  const registered = (occurredAt: bigint, name: string) =>
    toBinary(
      ArtifactRegisteredSchema,
      create(ArtifactRegisteredSchema, {
        metadata: {
          eventId: envelope.id,
          streamId: "artifact-42",
          streamVersion: 3n,
          occurredAt: { seconds: occurredAt },
        },
        artifactId: "artifact-42",
        name,
        version: "1.0.0",
      }),
    );
  const decoded = (data: Uint8Array) => {
    try {
      return decodeEvent(ArtifactRegisteredSchema, { ...envelope, data }).name;
    } catch (error) {
      expect(error).toBeInstanceOf(PermanentError);
      return (error as Error).message;
    }
  };
  expect(decoded(registered(1_796_000_000n, "api"))).toBe("api");
  const refused = decoded(registered(253_402_300_800n, "a\u0001pi"));
  expect(refused).toMatch(/^rdm\.configuration\.v1\.ArtifactRegistered breaks the input rules: /);
  expect(refused).toContain(
    "metadata.occurred_at: must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z",
  );
  expect(refused).toContain("name: must not contain control characters");
});

describe("an event's body is about the stream it is published under", () => {
  const eventTypes = [releaseEvents, changeEvents, configurationEvents, deploymentEvents, notificationEvents]
    .flatMap((file) => file.messages)
    .filter((m) => m.fields.find((f) => f.number === 1)?.message?.typeName === "rdm.common.v1.EventMetadata");

  test("every event type names its stream from its body (a new type without a rule fails here)", () => {
    expect(eventTypes.length).toBeGreaterThan(80);
    const without = eventTypes.filter((schema) => streamOfBody(schema, create(schema)) === undefined);
    expect(without.map((s) => s.typeName)).toEqual([]);
  });

  const cases: [DescMessage, Record<string, unknown>, string][] = [
    [
      ReleaseRegisteredSchema,
      { releaseId: "0b7e6c2a-0000-4000-8000-000000000001" },
      "0b7e6c2a-0000-4000-8000-000000000001",
    ],
    [ReleaseModelVersionCreatedSchema, { model: { name: "standard" } }, "releasemodel-standard"],
    [SubscriptionCreatedSchema, { subscriptionId: "s-1" }, "subscription-s-1"],
    [EnvironmentRegisteredSchema, { environment: { name: "prod" } }, "environment-prod"],
    [EnvironmentChangedSchema, { environment: { name: "prod" } }, "environment-prod"],
    [BaselineDeploymentRecordedSchema, { environment: "prod" }, "baseline-prod"],
    [RelationshipAddedSchema, { relationship: { sourceCiId: "ci-1", targetCiId: "ci-2" } }, "ci-1"],
    [RelationshipRemovedSchema, { relationship: { sourceCiId: "ci-1", targetCiId: "ci-2" } }, "ci-1"],
    [ArtifactRegisteredSchema, { artifactId: "artifact-42" }, "artifact-42"],
  ];

  test.each(cases)("%s: accepted under its own stream, refused under another", (schema, init, stream) => {
    const decoded = (subject: string) => {
      const data = toBinary(
        schema,
        create(schema, { ...init, metadata: { eventId: envelope.id, streamId: subject, streamVersion: 3n } }),
      );
      try {
        decodeEvent(schema, { ...envelope, type: schema.typeName, subject, data });
        return "accepted";
      } catch (error) {
        expect(error).toBeInstanceOf(PermanentError);
        return (error as Error).message;
      }
    };
    expect(decoded(stream)).toBe("accepted");
    expect(decoded("another")).toBe(
      `${schema.typeName} is about stream ${JSON.stringify(stream)}, not its metadata.stream_id "another"`,
    );
  });
});
