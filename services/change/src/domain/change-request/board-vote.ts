import { sameSubject } from "@rdm/auth";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { requireBoardMember, requireState } from "./rules.js";
import type * as C from "./types.js";

/** Refuses a vote unless the change awaits its board and the voter sits on it, did not request it and has not voted. */
export function requireEligibleVoter(command: C.ApproveChange | C.RejectChange, change: ChangeRequest): void {
  requireState(change, command.kind === "approveChange" ? "approve" : "reject", [ChangeState.ASSESSED]);
  requireBoardMember(change, command);
  // Compared as subjects (case, compatibility forms, white space folded): "Carl" is "carl".
  if (sameSubject(command.approver, change.requester)) {
    // Who may act, not what state the change is in: PERMISSION_DENIED, as in the release service.
    throw changeRuleViolation(
      "PERMISSION_DENIED",
      "change.approval.separation_of_duties",
      `${command.approver} requested change ${change.key} and cannot approve or reject it`,
    );
  }
  if (change.approvals.some((approval) => sameSubject(approval.approver, command.approver))) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.approval.one_vote_per_member",
      `${command.approver} has already voted on change ${change.key}`,
    );
  }
}
