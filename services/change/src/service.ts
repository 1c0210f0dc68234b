import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";

/**
 * The change service: its own event store, relay to rdm.change.events.v1, health and reflection.
 * Its domain APIs arrive with their own issue; until then it serves no RPCs of its own.
 */
export const changeService: GrpcServiceDefinition = {
  name: "change",
  defaultPort: 50052,
  services: () => [],
};

export const startChangeService = (env: NodeJS.ProcessEnv = process.env) => startGrpcService(changeService, env);
