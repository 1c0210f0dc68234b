import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ApprovalStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { currentApprovals, phaseDefinition, phaseName, refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function requestApproval(command: ReleaseCommandOf<"requestApproval">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release, model } = requireActive(state);
  const requirement = phaseDefinition(model, release.phase)?.approvals.find(
    (a) => a.approverGroup === command.approverGroup,
  );
  if (!requirement)
    return refuse(
      "approval.required_by_phase",
      `${phaseName(release.phase)} requires no approval from ${command.approverGroup}`,
    );
  const pending = currentApprovals(release).get(command.approverGroup);
  if (pending && pending.status !== ApprovalStatus.REJECTED)
    refuse(
      "approval.not_pending",
      `an approval by ${command.approverGroup} is already ${ApprovalStatus[pending.status]}`,
    );
  return [
    create(ev.ReleaseApprovalRequestedSchema, {
      releaseId,
      approvalId: command.approvalId,
      phase: release.phase,
      phaseEntry: release.phaseEntry,
      approverGroup: requirement.approverGroup,
      quorum: requirement.quorum,
    }),
  ];
}
