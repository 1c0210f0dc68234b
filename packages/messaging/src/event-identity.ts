import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
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

/**
 * The event's data as the message its type names, checked against its envelope
 * (checkEventIdentity) and against the input rules every request obeys (`@rdm/proto`: no text a
 * database cannot hold, no instant outside the years 1..9999), so what no service would publish
 * is kept out of every consumer alike. Bytes that do not decode, or break a rule, will not do
 * better on a retry: a PermanentError, so the event goes to the dead-letter topic at once.
 */
export function decodeEvent<S extends DescMessage>(schema: S, event: CloudEvent): MessageShape<S> {
  let message: MessageShape<S>;
  try {
    message = fromBinary(schema, event.data);
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  checkEventIdentity(event, (message as { metadata?: EventIdentity }).metadata);
  checkEventInput(event, schema, message);
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
