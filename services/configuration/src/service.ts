import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";

/**
 * The configuration service: its own event store, relay to rdm.configuration.events.v1, health and reflection.
 * Its domain APIs arrive with their own issue; until then it serves no RPCs of its own.
 */
export const configurationService: GrpcServiceDefinition = {
  name: "configuration",
  defaultPort: 50053,
  services: () => [],
};

export const startConfigurationService = (env: NodeJS.ProcessEnv = process.env) =>
  startGrpcService(configurationService, env);
