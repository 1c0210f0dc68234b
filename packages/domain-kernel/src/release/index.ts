// The release rules that read sides share with the release service: the state fold (evolve)
// and the gate conditions, so a read model evaluates a release exactly as the service does.
export { evolve, fold } from "./evolve.js";
export { currentApprovals, gateConditions } from "./gates.js";
export {
  AUTHORIZED_CHANGE_STATES,
  CHANGE_STATE_NAMES,
  changeStateName,
  DEFAULT_MODELS,
  defaultModelName,
  durationMs,
  EMERGENCY_MODEL,
  STANDARD_MODEL,
  seconds,
} from "./models.js";
export {
  initialState,
  type LinkedChangeState,
  nextPhase,
  phaseDefinition,
  phaseIndex,
  type ReleaseEvent,
  type ReleaseState,
} from "./state.js";

/**
 * Version of `evolve`: a projection that stores folded release states records the version it
 * folded with and refolds them when it changes. Bump it with every change to what evolve does.
 */
export const RELEASE_RULES_VERSION = 5;
