import { createRegistry } from "@bufbuild/protobuf";
import { type DomainEvent, eventCodec } from "@rdm/command-handler";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";

/** Every event type the change service's streams may hold; the stored type is the full message name. */
export const changeEventRegistry = createRegistry(file_rdm_change_v1_events);

/** An event message of this service: every one carries EventMetadata as field 1. */
export type ServiceEvent = DomainEvent;

export const changeCodec = eventCodec<ServiceEvent>(changeEventRegistry, "change service");
