export * from "./baseline.js";
export * from "./deployment.js";
export * from "./deployment-evolve.js";
export * from "./environment.js";
export * from "./executor-steps.js";
export * from "./gates.js";
export * from "./rule-violation.js";
export * from "./strategy.js";
