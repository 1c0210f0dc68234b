import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { requireVotableApproval } from "./approval-vote.js";
import { refuse } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function rejectRelease(
  command: ReleaseCommandOf<"rejectRelease">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const approval = requireVotableApproval(command.approvalId, state, ctx);
  if (!command.reason.trim()) refuse("approval.reason_required", "a rejection needs a reason");
  return [
    create(ev.ReleaseApprovalRejectedSchema, {
      releaseId,
      approvalId: approval.approvalId,
      approver: ctx.actor,
      reason: command.reason,
    }),
  ];
}
