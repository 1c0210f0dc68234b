import { createRegistry, type DescMessage, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import type { NewEvent, RecordedEvent } from "@rdm/eventstore";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";

/** Every event type the change service's streams may hold; the stored type is the full message name. */
export const changeEventRegistry = createRegistry(file_rdm_change_v1_events);

/** An event message of this service: every one carries EventMetadata as field 1. */
export type ServiceEvent = Message & { metadata?: EventMetadata | undefined };

export function encodeEvent(event: ServiceEvent, traceparent?: string): NewEvent {
  const metadata = event.metadata;
  const schema = changeEventRegistry.getMessage(event.$typeName);
  if (!schema || !metadata) throw new Error(`cannot encode ${event.$typeName}`);
  return {
    eventId: metadata.eventId,
    type: event.$typeName,
    data: toBinary(schema as DescMessage, event),
    metadata: {
      actor: metadata.actor,
      correlationId: metadata.correlationId,
      causationId: metadata.causationId,
      requestId: metadata.requestId,
      ...(traceparent ? { traceparent } : {}),
    },
  };
}

export function decodeEvent<E extends ServiceEvent>(recorded: RecordedEvent): E {
  const schema = changeEventRegistry.getMessage(recorded.type);
  if (!schema) throw new Error(`unknown change service event type ${recorded.type}`);
  return fromBinary(schema, recorded.data) as unknown as E;
}
