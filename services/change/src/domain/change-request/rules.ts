import {
  ChangeBoard,
  type ChangeRequest,
  ChangeState,
  ChangeTaskState,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import type { ChangeRequestState, Vote } from "./types.js";

export const stateName = (state: ChangeState) => ChangeState[state] ?? String(state);

export function requireChange(state: ChangeRequestState): ChangeRequest {
  if (!state.change) throw changeRuleViolation("NOT_FOUND", "change.exists", "change request not found");
  return state.change;
}

/** Refuses unless the change is in one of `allowed`; the rule says which transition was attempted. */
export function requireState(change: ChangeRequest, action: string, allowed: readonly ChangeState[]): void {
  if (allowed.includes(change.state)) return;
  throw changeRuleViolation(
    "FAILED_PRECONDITION",
    `change.${action}.state`,
    `cannot ${action.replaceAll("_", " ")} change ${change.key} in state ${stateName(change.state)}; allowed in ${allowed.map(stateName).join(", ")}`,
  );
}

/**
 * The `approver` role lets a caller vote at all; sitting on this change's board is the token's
 * group (the identity provider's list of CAB/ECAB members), checked per change.
 */
export function requireBoardMember(change: ChangeRequest, vote: Vote): void {
  const group =
    change.board === ChangeBoard.CAB
      ? vote.boardGroups.cab
      : change.board === ChangeBoard.ECAB
        ? vote.boardGroups.ecab
        : undefined;
  if (group === undefined) {
    // Standard changes are authorized by their template: no board votes on them.
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.approval.board",
      `change ${change.key} is ${ChangeBoard[change.board]}; no board votes on it`,
    );
  }
  if (vote.approverGroups.includes(group)) return;
  const description = `${vote.approver} is not in group "${group}" (${ChangeBoard[change.board]}) and cannot vote on change ${change.key}`;
  throw changeRuleViolation("PERMISSION_DENIED", "change.approval.board_member", description, [
    { rule: "change.approval.board_member", subject: group, description },
  ]);
}

/** Fields every change event carries: its id, the linked release and the state after it. */
export const envelope = (change: ChangeRequest, state: ChangeState) => ({
  changeRequestId: change.changeRequestId,
  linkedReleaseId: change.linkedReleaseId,
  state,
});

export const openTasks = (change: ChangeRequest) => change.tasks.filter((task) => task.state === ChangeTaskState.OPEN);

export const TERMINAL: readonly ChangeState[] = [ChangeState.CLOSED, ChangeState.REJECTED, ChangeState.CANCELLED];
