import { createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { NewEvent, RecordedEvent } from "@rdm/eventstore";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { ReleaseEvent } from "../domain/release.js";

/** Every event type the release stream may hold; the stored type is the full protobuf message name. */
export const releaseEventRegistry = createRegistry(ReleaseRegisteredSchema);

export function encodeReleaseEvent(event: ReleaseEvent, traceparent?: string): NewEvent {
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

export function decodeReleaseEvent(recorded: RecordedEvent): ReleaseEvent {
  const schema = releaseEventRegistry.getMessage(recorded.type);
  if (!schema) throw new Error(`unknown release event type ${recorded.type}`);
  return fromBinary(schema, recorded.data) as ReleaseEvent;
}
