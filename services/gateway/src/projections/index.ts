import { changeProjection } from "./changes/projection.js";
import { configurationProjection } from "./configuration/projection.js";
import { deploymentProjection } from "./deployments/projection.js";
import type { Projection } from "./projection.js";
import { releaseProjection } from "./releases/projection.js";

/** Every read model of the gateway, one per topic; add a projection here to have it fed. */
export const projections: readonly Projection[] = [
  releaseProjection,
  changeProjection,
  configurationProjection,
  deploymentProjection,
] as Projection[];
