// The configuration rules that read sides share with the configuration service: the direction
// impact travels along a relationship, the impact walk, and the baseline fold.
export {
  type BaselineEvent,
  type BaselineState,
  foldBaseline,
  inEnvironmentOrder,
  initialBaselineState,
  type RestoredScope,
  replacedByRollback,
} from "./baseline.js";
export {
  compareIds,
  type Edge,
  type ImpactOptions,
  impactDirection,
  type Reached,
  transitiveDependents,
} from "./impact.js";

/**
 * Version of the baseline fold: a projection built with another version refolds its baselines.
 * 2: a back-out of a successful deployment takes it back in the last known good too.
 */
export const BASELINE_RULES_VERSION = 2;
