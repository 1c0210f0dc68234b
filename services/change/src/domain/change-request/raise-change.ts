import { create } from "@bufbuild/protobuf";
import { ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestRaisedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { riskOf } from "../risk.js";
import { changeRuleViolation } from "../rule-violation.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent, ChangeRequestState } from "./types.js";

export function raiseChange(command: C.RaiseChange, state: ChangeRequestState): ChangeRequestEvent[] {
  if (state.change) {
    throw changeRuleViolation(
      "ALREADY_EXISTS",
      "change.unique_id",
      `change request ${command.changeRequestId} already exists`,
    );
  }
  const { kind: _kind, template, plannedWindow, firstCommitTime, ...fields } = command;
  let { implementationPlan, testPlan, backoutPlan } = command;
  let risk = riskOf(command.impact, command.urgency);
  if (command.type === ChangeType.STANDARD) {
    if (!template) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "standard_change.template_exists",
        `standard change template ${command.templateId} is not in the catalog`,
      );
    }
    if (template.retired) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "standard_change.template_active",
        `standard change template "${template.name}" is retired`,
      );
    }
    // The template's plans and risk are what was pre-authorized.
    implementationPlan ||= template.implementationPlan;
    testPlan ||= template.testPlan;
    backoutPlan ||= template.backoutPlan;
    risk = template.risk;
  }
  return [
    create(ChangeRequestRaisedSchema, {
      ...fields,
      state: ChangeState.DRAFT,
      implementationPlan,
      testPlan,
      backoutPlan,
      risk,
      ...(plannedWindow ? { plannedWindow } : {}),
      ...(firstCommitTime ? { firstCommitTime } : {}),
    }),
  ];
}
