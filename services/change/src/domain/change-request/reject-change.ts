import { create } from "@bufbuild/protobuf";
import { ApprovalDecision, type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeApprovalRecordedSchema, ChangeRequestRejectedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { requireEligibleVoter } from "./board-vote.js";
import { envelope } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function rejectChange(command: C.RejectChange, change: ChangeRequest): ChangeRequestEvent[] {
  requireEligibleVoter(command, change);
  return [
    create(ChangeApprovalRecordedSchema, {
      ...envelope(change, ChangeState.ASSESSED),
      approver: command.approver,
      decision: ApprovalDecision.REJECTED,
      comment: command.reason,
      board: change.board,
    }),
    create(ChangeRequestRejectedSchema, {
      ...envelope(change, ChangeState.REJECTED),
      board: change.board,
      rejectedBy: command.approver,
      reason: command.reason,
    }),
  ];
}
