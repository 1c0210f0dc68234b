import { type DescMessage, fromBinary, type MessageShape, ScalarType } from "@bufbuild/protobuf";
import { inputViolations } from "@rdm/proto";
import type { CloudEvent } from "./cloudevents.js";
import { PermanentError } from "./failures.js";

/** The part of rdm.common.v1.EventMetadata (field 1 of every event message) that names the event. */
export interface EventIdentity {
  eventId: string;
  streamId: string;
  streamVersion: bigint;
}

/**
 * Checks that an event's body names the event its envelope names: the metadata's event id is
 * `ce_id`, its stream `ce_subject` (the message key), its stream version 1 or more and, when the
 * envelope carries `ce_streamversion`, that one. Every event the services publish does (the
 * command handler stamps them; the relay copies the headers from the stored event), so a
 * mismatch is a message no service wrote: an empty or foreign body under valid headers, or a
 * replay under another subject. It would make a row for an empty or another aggregate's id;
 * no retry can mend it, so it goes to the dead-letter topic (PermanentError) with the reason.
 */
export function checkEventIdentity(
  envelope: CloudEvent,
  metadata: EventIdentity | undefined,
): asserts metadata is EventIdentity {
  const problems: string[] = [];
  if (!metadata) problems.push("it has no metadata");
  else {
    if (metadata.eventId !== envelope.id)
      problems.push(
        `metadata.event_id ${JSON.stringify(metadata.eventId)} is not ce_id ${JSON.stringify(envelope.id)}`,
      );
    if (metadata.streamId !== envelope.subject)
      problems.push(
        `metadata.stream_id ${JSON.stringify(metadata.streamId)} is not ce_subject ${JSON.stringify(envelope.subject)}`,
      );
    const headerVersion = envelope.extensions?.streamversion;
    if (metadata.streamVersion < 1n) problems.push("metadata.stream_version is not 1 or more");
    else if (headerVersion !== undefined && headerVersion !== String(metadata.streamVersion))
      problems.push(
        `metadata.stream_version ${metadata.streamVersion} is not ce_streamversion ${JSON.stringify(headerVersion)}`,
      );
  }
  if (problems.length > 0)
    throw new PermanentError(`${envelope.type} does not match its envelope: ${problems.join("; ")}`);
}

type Body = Record<string, unknown>;
const nameOf = (body: Body, field: string) => (body[field] as { name?: string } | undefined)?.name ?? "";
const sourceCiOf = (body: Body) => (body.relationship as { sourceCiId?: string } | undefined)?.sourceCiId ?? "";
const environmentOf = (body: Body) => `environment-${nameOf(body, "environment")}`;

/**
 * The streams whose id is not their event's field 2 as it is (README, "Events on Kafka"): named
 * by their type, or by their package.
 */
const NAMED_STREAMS: Record<string, (body: Body) => string> = {
  "rdm.release.v1.ReleaseModelVersionCreated": (body) => `releasemodel-${nameOf(body, "model")}`,
  "rdm.notification.v1.": (body) => `subscription-${body.subscriptionId}`,
  "rdm.deployment.v1.EnvironmentRegistered": environmentOf,
  "rdm.deployment.v1.EnvironmentChanged": environmentOf,
  "rdm.configuration.v1.BaselineDeploymentRecorded": (body) => `baseline-${body.environment}`,
  "rdm.configuration.v1.RelationshipAdded": sourceCiOf,
  "rdm.configuration.v1.RelationshipRemoved": sourceCiOf,
};

/**
 * The stream an event's body is about: every event message carries its aggregate's id as field 2
 * (`release_id`, `ci_id`, ...), which is its stream's id, but for the streams NAMED_STREAMS names.
 * Undefined for a message that has neither (not an event of the platform).
 */
export function streamOfBody<S extends DescMessage>(schema: S, message: MessageShape<S>): string | undefined {
  const body = message as unknown as Body;
  const named =
    NAMED_STREAMS[schema.typeName] ?? NAMED_STREAMS[schema.typeName.slice(0, schema.typeName.lastIndexOf(".") + 1)];
  if (named) return named(body);
  const id = schema.fields.find((f) => f.number === 2);
  if (id?.fieldKind !== "scalar" || id.scalar !== ScalarType.STRING || !id.name.endsWith("_id")) return undefined;
  return body[id.localName] as string;
}

/**
 * Checks that an event's body is about the stream it is published under: its aggregate's id
 * (streamOfBody) is its metadata's stream id, which checkEventIdentity checked against the key.
 * A body copied from another stream's event with its metadata rewritten would otherwise change
 * another aggregate's rows; no service publishes one, so it goes to the dead-letter topic.
 */
export function checkEventStream<S extends DescMessage>(
  envelope: CloudEvent,
  schema: S,
  message: MessageShape<S>,
  metadata: EventIdentity,
) {
  const stream = streamOfBody(schema, message);
  if (stream === undefined || stream === metadata.streamId) return;
  throw new PermanentError(
    `${envelope.type} is about stream ${JSON.stringify(stream)}, not its metadata.stream_id ${JSON.stringify(metadata.streamId)}`,
  );
}

/**
 * Every check a consumer makes of a decoded event before it handles it: its body names what its
 * envelope names (checkEventIdentity) and is about that stream (checkEventStream), and it obeys
 * the input rules (checkEventInput).
 */
export function checkEvent<S extends DescMessage>(
  envelope: CloudEvent,
  schema: S,
  message: MessageShape<S>,
): asserts message is MessageShape<S> & { metadata: EventIdentity } {
  const metadata = (message as { metadata?: EventIdentity }).metadata;
  checkEventIdentity(envelope, metadata);
  checkEventStream(envelope, schema, message, metadata);
  checkEventInput(envelope, schema, message);
}

/**
 * The event's data as the message its type names, checked (checkEvent) against its envelope and
 * against the input rules every request obeys (`@rdm/proto`: no text a database cannot hold, no
 * instant outside the years 1..9999), so what no service would publish is kept out of every
 * consumer alike. Bytes that do not decode, or break a rule, will not do
 * better on a retry: a PermanentError, so the event goes to the dead-letter topic at once.
 */
export function decodeEvent<S extends DescMessage>(schema: S, event: CloudEvent): MessageShape<S> {
  let message: MessageShape<S>;
  try {
    message = fromBinary(schema, event.data);
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  checkEvent(event, schema, message);
  return message;
}

/**
 * Refuses an event that breaks the input rules every request obeys (`@rdm/proto`): no service
 * publishes one, so it is kept out of every consumer alike (PermanentError, naming the fields).
 */
export function checkEventInput<S extends DescMessage>(envelope: CloudEvent, schema: S, message: MessageShape<S>) {
  const broken = inputViolations(schema, message);
  if (broken.length === 0) return;
  const listed = broken.slice(0, 5).map((v) => `${v.field}: ${v.description}`);
  throw new PermanentError(`${envelope.type} breaks the input rules: ${listed.join("; ")}`);
}
