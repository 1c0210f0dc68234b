import { RuleViolation } from "@rdm/command-handler";
import { gateConditions, type LinkedChangeState, type ReleaseState } from "@rdm/domain-kernel/release";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { phaseName } from "./rules.js";

/** Refuses the command unless every condition of the current phase's gate (kernel rule) is met. */
export function requireGate(state: ReleaseState, changes: LinkedChangeState[]): void {
  const unmet = gateConditions(state, changes).filter((c) => !c.met);
  if (unmet.length) {
    throw new RuleViolation(
      "FAILED_PRECONDITION",
      "gate.not_met",
      `gate of ${phaseName(state.release?.phase ?? ReleasePhase.UNSPECIFIED)} not met: ${unmet.map((c) => c.description).join("; ")}`,
      {
        subject: "release",
        conditions: unmet.map(({ rule, subject, description }) => ({ rule, subject, description })),
      },
    );
  }
}
