export { type ExecutorOptions, ReferenceExecutor, type TargetAction } from "./executor/reference-executor.js";
export { deploymentServiceDefinition, startDeploymentService } from "./service.js";
