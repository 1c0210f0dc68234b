import { createRegistry } from "@bufbuild/protobuf";
import { type Aggregate, type DomainEvent, eventCodec } from "@rdm/command-handler";
import { file_rdm_deployment_v1_events } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  type DeploymentAggregateState,
  type DeploymentEvent,
  type EnvironmentEvent,
  type EnvironmentState,
  evolve,
  evolveEnvironment,
  fold,
  initialState,
} from "../domain/index.js";

/** Every event of this service's streams; the stored type is the full message name. */
export const deploymentCodec = eventCodec<DomainEvent>(createRegistry(file_rdm_deployment_v1_events), "deployment");

/** Deployments are streams named by their UUID (the Kafka key). */
export const deployments: Aggregate<DeploymentAggregateState, DeploymentEvent> = {
  streamType: "deployment",
  initialState,
  evolve,
  fold,
};

/** Environments are streams named "environment-<name>". */
export const environments: Aggregate<EnvironmentState, EnvironmentEvent> = {
  streamType: "environment",
  idOf: (streamId) => streamId.slice("environment-".length),
  initialState: () => ({ environment: undefined }),
  evolve: evolveEnvironment,
};
