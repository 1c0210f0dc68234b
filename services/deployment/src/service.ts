import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";

/**
 * The deployment service: its own event store, relay to rdm.deployment.events.v1, health and reflection.
 * Its domain APIs arrive with their own issue; until then it serves no RPCs of its own.
 */
export const deploymentService: GrpcServiceDefinition = {
  name: "deployment",
  defaultPort: 50054,
  services: () => [],
};

export const startDeploymentService = (env: NodeJS.ProcessEnv = process.env) =>
  startGrpcService(deploymentService, env);
