import { equals, fromBinary, type Message, type Registry, toBinary } from "@bufbuild/protobuf";
import type { NewEvent, RecordedEvent } from "@rdm/eventstore";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";

/** An event message of a service: every one carries EventMetadata as field 1. */
export type DomainEvent = Message & { metadata?: EventMetadata | undefined };

/** Protobuf binary encoding of a service's events; the stored type is the full message name. */
export interface EventCodec<E extends DomainEvent = DomainEvent> {
  encode(event: E, traceparent?: string): NewEvent;
  decode(recorded: Pick<RecordedEvent, "type" | "data">): E;
  /** Whether two events are the same message, field by field. */
  same(a: E, b: E): boolean;
}

/** A codec for every message of `registry` (e.g. `createRegistry(file_rdm_release_v1_events)`). */
export function eventCodec<E extends DomainEvent = DomainEvent>(registry: Registry, service: string): EventCodec<E> {
  return {
    encode(event, traceparent) {
      const metadata = event.metadata;
      const schema = registry.getMessage(event.$typeName);
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
    },
    decode(recorded) {
      const schema = registry.getMessage(recorded.type);
      if (!schema) throw new Error(`unknown ${service} event type ${recorded.type}`);
      return fromBinary(schema, recorded.data) as unknown as E;
    },
    same(a, b) {
      const schema = registry.getMessage(a.$typeName);
      return schema !== undefined && a.$typeName === b.$typeName && equals(schema, a, b);
    },
  };
}
