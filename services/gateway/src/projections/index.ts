import { auditProjections } from "./audit/projection.js";
import { changeProjection } from "./changes/projection.js";
import { configurationProjection } from "./configuration/projection.js";
import { deploymentPlanProjection } from "./deployment-plans/projection.js";
import { deploymentProjection } from "./deployments/projection.js";
import { environmentDefinitionProjection } from "./environments/projection.js";
import type { Projection } from "./projection.js";
import { releaseProjection } from "./releases/projection.js";

/**
 * Every read model of the gateway; add a projection here to have it fed. A topic's projections
 * apply each event in this order, in one transaction: the combined views come last.
 */
export const projections: readonly Projection[] = [
  releaseProjection,
  changeProjection,
  configurationProjection,
  deploymentProjection,
  deploymentPlanProjection,
  environmentDefinitionProjection,
  ...auditProjections,
] as Projection[];
