import { createRegistry, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import type { NewEvent, RecordedEvent } from "@rdm/eventstore";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { ReleaseEvent } from "../domain/release.js";

/** Every event type the service's streams may hold; the stored type is the full protobuf message name. */
export const releaseEventRegistry = createRegistry(file_rdm_release_v1_events);

export function encodeEvent(
  event: Message & {
    metadata?: { actor: string; eventId: string; correlationId: string; causationId: string; requestId: string };
  },
  traceparent?: string,
): NewEvent {
  const metadata = event.metadata;
  const schema = releaseEventRegistry.getMessage(event.$typeName);
  if (!schema || !metadata) throw new Error(`cannot encode ${event.$typeName}`);
  return {
    eventId: metadata.eventId,
    type: event.$typeName,
    data: toBinary(schema, event),
    metadata: {
      actor: metadata.actor,
      correlationId: metadata.correlationId,
      causationId: metadata.causationId,
      requestId: metadata.requestId,
      ...(traceparent ? { traceparent } : {}),
    },
  };
}

export const encodeReleaseEvent = (event: ReleaseEvent, traceparent?: string) => encodeEvent(event, traceparent);

export function decodeEvent(recorded: RecordedEvent): Message {
  const schema = releaseEventRegistry.getMessage(recorded.type);
  if (!schema) throw new Error(`unknown release event type ${recorded.type}`);
  return fromBinary(schema, recorded.data);
}

export const decodeReleaseEvent = (recorded: RecordedEvent) => decodeEvent(recorded) as ReleaseEvent;
