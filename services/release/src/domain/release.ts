// The release aggregate: one decider function per command in ./release/, composed here.
export { decide } from "./release/decide.js";
export { evolve, fold, initialState } from "./release/evolve.js";
export { gateConditions } from "./release/gate.js";
export { nextPhase } from "./release/rules.js";
export type {
  DecisionContext,
  DeploymentOutcomeReport,
  LinkedChangeState,
  RegisterRelease,
  ReleaseCommand,
  ReleaseCommandOf,
  ReleaseEvent,
  ReleaseState,
} from "./release/types.js";

/** Human-readable release key, e.g. REL-2026-0042 (sequence numbers per year; gaps allowed). */
export const releaseKey = (year: number, sequence: number) => `REL-${year}-${String(sequence).padStart(4, "0")}`;
