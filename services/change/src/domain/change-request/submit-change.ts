import { create } from "@bufbuild/protobuf";
import type { RuleCondition } from "@rdm/command-handler";
import {
  ChangeBoard,
  type ChangeRequest,
  ChangeState,
  ChangeType,
  type StandardChangeTemplate,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestAssessedSchema,
  ChangeRequestAuthorizedSchema,
  ChangeRequestSubmittedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, requireState } from "./rules.js";
import type { ChangeRequestEvent } from "./types.js";

/** What a change needs before it can be submitted for assessment. */
function submissionGaps(change: ChangeRequest): RuleCondition[] {
  const gaps: RuleCondition[] = [];
  const need = (ok: boolean, field: string, description: string) => {
    if (!ok) gaps.push({ rule: `change.submit.${field}_required`, subject: field, description });
  };
  need(
    change.type === ChangeType.STANDARD || change.justification.trim() !== "",
    "justification",
    "a justification is required",
  );
  need(change.affectedCiIds.length > 0, "affected_ci_ids", "at least one affected configuration item is required");
  need(change.implementationPlan.trim() !== "", "implementation_plan", "an implementation plan is required");
  need(change.backoutPlan.trim() !== "", "backout_plan", "a back-out plan is required");
  return gaps;
}

export function submitChange(
  change: ChangeRequest,
  template: StandardChangeTemplate | undefined,
): ChangeRequestEvent[] {
  requireState(change, "submit", [ChangeState.DRAFT]);
  // Pre-authorization is the template's: one retired since the draft was raised no longer gives it.
  if (change.type === ChangeType.STANDARD && (!template || template.retired)) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "standard_change.template_active",
      `standard change template ${template ? `"${template.name}" is retired` : `${change.templateId} is not in the catalog`}: raise the change as a normal one`,
    );
  }
  const gaps = submissionGaps(change);
  if (gaps.length > 0) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.submit.complete",
      `change ${change.key} is incomplete: ${gaps.map((gap) => gap.description).join("; ")}`,
      gaps,
    );
  }
  const submitted = create(ChangeRequestSubmittedSchema, envelope(change, ChangeState.SUBMITTED));
  if (change.type !== ChangeType.STANDARD) return [submitted];
  // A standard change is pre-authorized by its template: no CAB, straight to AUTHORIZED.
  return [
    submitted,
    create(ChangeRequestAssessedSchema, {
      ...envelope(change, ChangeState.ASSESSED),
      impact: change.impact,
      urgency: change.urgency,
      risk: change.risk,
      board: ChangeBoard.PRE_AUTHORIZED,
      requiredApprovals: 0,
      notes: `pre-authorized by standard change template ${change.templateId}`,
    }),
    create(ChangeRequestAuthorizedSchema, {
      ...envelope(change, ChangeState.AUTHORIZED),
      board: ChangeBoard.PRE_AUTHORIZED,
      templateId: change.templateId,
    }),
  ];
}
