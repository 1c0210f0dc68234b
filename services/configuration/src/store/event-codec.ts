import { createRegistry } from "@bufbuild/protobuf";
import { eventCodec } from "@rdm/command-handler";
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

export const configurationCodec = eventCodec<ConfigurationEvent>(configurationEventRegistry, "configuration");
