import { createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { NewEvent, RecordedEvent } from "@rdm/eventstore";
import {
  ArtifactQuarantinedSchema,
  ArtifactRegisteredSchema,
  ArtifactRetiredSchema,
  ArtifactVerifiedSchema,
  BaselineDeploymentRecordedSchema,
  ConfigurationItemRegisteredSchema,
  ConfigurationItemStatusChangedSchema,
  ConfigurationItemUpdatedSchema,
  RelationshipAddedSchema,
  RelationshipRemovedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import type { ArtifactEvent } from "../domain/artifact.js";
import type { BaselineEvent } from "../domain/baseline.js";
import type { ConfigurationItemEvent } from "../domain/configuration-item.js";

export type ConfigurationEvent = ConfigurationItemEvent | ArtifactEvent | BaselineEvent;

/** Every event type the configuration service records; the stored type is the full message name. */
export const configurationEventRegistry = createRegistry(
  ConfigurationItemRegisteredSchema,
  ConfigurationItemUpdatedSchema,
  ConfigurationItemStatusChangedSchema,
  RelationshipAddedSchema,
  RelationshipRemovedSchema,
  ArtifactRegisteredSchema,
  ArtifactVerifiedSchema,
  ArtifactQuarantinedSchema,
  ArtifactRetiredSchema,
  BaselineDeploymentRecordedSchema,
);

export function encodeConfigurationEvent(event: ConfigurationEvent, traceparent?: string): NewEvent {
  const metadata = event.metadata;
  const schema = configurationEventRegistry.getMessage(event.$typeName);
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

export function decodeConfigurationEvent<E extends ConfigurationEvent = ConfigurationEvent>(
  recorded: RecordedEvent,
): E {
  const schema = configurationEventRegistry.getMessage(recorded.type);
  if (!schema) throw new Error(`unknown configuration event type ${recorded.type}`);
  return fromBinary(schema, recorded.data) as E;
}
