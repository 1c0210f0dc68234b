export { type ExecutorOptions, ReferenceExecutor, type TargetAction } from "./executor/reference-executor.js";
export { deploymentService, deploymentServiceDefinition, startDeploymentService } from "./service.js";
