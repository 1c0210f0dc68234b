// The release aggregate: one decider function per command in ./release/, composed here.

// The fold and the gate rules are the shared kernel's (the gateway applies the same ones).
export {
  evolve,
  fold,
  gateConditions,
  initialState,
  type LinkedChangeState,
  nextPhase,
  type ReleaseEvent,
  type ReleaseState,
} from "@rdm/domain-kernel/release";
export { decide } from "./release/decide.js";
export { productionOfThisStay } from "./release/record-deployment-outcome.js";
export type {
  DecisionContext,
  DeploymentOutcomeReport,
  RegisterRelease,
  ReleaseCommand,
  ReleaseCommandOf,
} from "./release/types.js";

/** Human-readable release key, e.g. REL-2026-0042 (sequence numbers per year; gaps allowed). */
export const releaseKey = (year: number, sequence: number) => `REL-${year}-${String(sequence).padStart(4, "0")}`;
