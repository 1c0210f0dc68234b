export { UPSTREAM_FACT_EVENTS } from "./consumers/upstream-facts.js";
export { type ExecutorOptions, ReferenceExecutor, type TargetAction } from "./executor/reference-executor.js";
export { deploymentServiceDefinition, startDeploymentService } from "./service.js";
export { deploymentQueryTables } from "./store/query-tables.js";
