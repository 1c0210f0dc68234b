import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { requireVotableApproval } from "./approval-vote.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function approveRelease(
  command: ReleaseCommandOf<"approveRelease">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const approval = requireVotableApproval(command.approvalId, state, ctx);
  const granted = approval.votes.filter((v) => v.approved).length + 1;
  return [
    create(ev.ReleaseApprovalGrantedSchema, {
      releaseId,
      approvalId: approval.approvalId,
      approver: ctx.actor,
      comment: command.comment,
      quorumReached: granted >= approval.quorum,
    }),
  ];
}
