import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestDetailsUpdatedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { riskOf } from "../risk.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function updateChange(command: C.UpdateChange, change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "update", [ChangeState.DRAFT]);
  const { kind: _kind, plannedWindow, firstCommitTime, ...fields } = command;
  let risk = riskOf(command.impact, command.urgency);
  if (change.type === ChangeType.STANDARD) {
    // The template's plans and risk are what was pre-authorized: they cannot be edited.
    const edited = (["implementationPlan", "testPlan", "backoutPlan"] as const).filter(
      (plan) => command[plan] !== "" && command[plan] !== change[plan],
    );
    if (edited.length > 0) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "change.update.standard_plans_fixed",
        `the plans of standard change ${change.key} are its template's and cannot be edited (${edited.join(", ")})`,
      );
    }
    fields.implementationPlan = change.implementationPlan;
    fields.testPlan = change.testPlan;
    fields.backoutPlan = change.backoutPlan;
    risk = change.risk;
  }
  return [
    create(ChangeRequestDetailsUpdatedSchema, {
      ...envelope(change, ChangeState.DRAFT),
      ...fields,
      risk,
      ...(plannedWindow ? { plannedWindow } : {}),
      ...(firstCommitTime ? { firstCommitTime } : {}),
    }),
  ];
}
