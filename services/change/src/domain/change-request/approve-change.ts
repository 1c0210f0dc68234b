import { create } from "@bufbuild/protobuf";
import { ApprovalDecision, type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeApprovalRecordedSchema, ChangeRequestAuthorizedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { requireEligibleVoter } from "./board-vote.js";
import { envelope } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function approveChange(command: C.ApproveChange, change: ChangeRequest): ChangeRequestEvent[] {
  requireEligibleVoter(command, change);
  const recorded = create(ChangeApprovalRecordedSchema, {
    ...envelope(change, ChangeState.ASSESSED),
    approver: command.approver,
    decision: ApprovalDecision.APPROVED,
    comment: command.comment,
    board: change.board,
  });
  const approvers = [
    ...change.approvals.filter((a) => a.decision === ApprovalDecision.APPROVED).map((a) => a.approver),
    command.approver,
  ];
  if (approvers.length < change.requiredApprovals) return [recorded];
  return [
    recorded,
    create(ChangeRequestAuthorizedSchema, {
      ...envelope(change, ChangeState.AUTHORIZED),
      board: change.board,
      approvers,
    }),
  ];
}
