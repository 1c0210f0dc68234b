import { sameSubject, subjectKey } from "@rdm/auth";
import type { DecisionContext } from "@rdm/command-handler";
import { type Approval, ApprovalStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { phaseDefinition, refuse, requireActive } from "./rules.js";
import type { ReleaseState } from "./types.js";

/**
 * The pending approval `approvalId` of the current phase entry, after checking that the caller may
 * vote on it: a member of the approver group, not involved in the release, not voted yet.
 */
export function requireVotableApproval(approvalId: string, state: ReleaseState, ctx: DecisionContext): Approval {
  const { release, model } = requireActive(state);
  const approval = release.approvals.find((a) => a.approvalId === approvalId);
  if (!approval) return refuse("approval.exists", `approval ${approvalId} not found`, "NOT_FOUND", approvalId);
  if (approval.phase !== release.phase || approval.phaseEntry !== release.phaseEntry)
    refuse("approval.current_phase", "the approval belongs to a phase the release has left");
  if (approval.status !== ApprovalStatus.PENDING)
    refuse("approval.pending", `the approval is already ${ApprovalStatus[approval.status]}`);
  const group = approval.approverGroup;
  const members = phaseDefinition(model, approval.phase)?.approvals.find((a) => a.approverGroup === group)?.members;
  // A model that names the members decides alone; otherwise the identity provider does, through
  // the token's groups claim. The approver role only admits the caller to the RPC.
  if (members?.length) {
    if (!members.some((member) => sameSubject(member, ctx.actor)))
      refuse("approval.group_member", `${ctx.actor} is not a named member of ${group}`, "PERMISSION_DENIED", group);
  } else if (!ctx.groups.includes(group))
    refuse(
      "approval.group_member",
      `${ctx.actor} is not in group ${group} (token groups: ${ctx.groups.join(", ") || "none"})`,
      "PERMISSION_DENIED",
      group,
    );
  // Compared as subjects (case, compatibility forms, white space folded): "Olivia" is "olivia".
  const involved = new Set(
    [
      release.owner,
      release.coordinator,
      release.registeredBy,
      approval.requestedBy,
      ...approval.ineligibleApprovers,
    ].map(subjectKey),
  );
  if (involved.has(subjectKey(ctx.actor)))
    refuse(
      "approval.separation_of_duties",
      `${ctx.actor} is (or was, while this approval was pending) the owner, coordinator or requester of this release and cannot approve it`,
      "PERMISSION_DENIED",
    );
  if (approval.votes.some((v) => sameSubject(v.approver, ctx.actor)))
    refuse("approval.one_vote_per_approver", `${ctx.actor} has already voted`);
  return approval;
}
