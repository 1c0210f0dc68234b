import { create } from "@bufbuild/protobuf";
import {
  type Approval,
  ApprovalStatus,
  type GateCondition,
  GateConditionSchema,
  type Release,
  ReleaseStatus,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { changeStateName } from "./models.js";
import { type LinkedChangeState, phaseDefinition, phaseIndex, type ReleaseState } from "./state.js";

/** The latest approval request of each group for the current entry of the current phase. */
export function currentApprovals(release: Release): Map<string, Approval> {
  const byGroup = new Map<string, Approval>();
  for (const a of release.approvals) {
    if (a.phase === release.phase && a.phaseEntry === release.phaseEntry) byGroup.set(a.approverGroup, a);
  }
  return byGroup;
}

const condition = (rule: string, subject: string, description: string, met: boolean) =>
  create(GateConditionSchema, { rule, subject, description, met });

/** An abandoned or closed release goes nowhere: its gate is shut. */
const stillActive = (release: Release) =>
  release.status === ReleaseStatus.ACTIVE
    ? []
    : [condition("gate.release_active", release.releaseId, `the release is ${ReleaseStatus[release.status]}`, false)];

/**
 * Every condition of the current phase's gate, met or not: the release still active (an abandoned
 * or closed one goes nowhere), required tasks done, required approvals granted (and not
 * rejected), linked change requests in a state the model accepts.
 */
export function gateConditions(state: ReleaseState, changes: LinkedChangeState[]): GateCondition[] {
  const { release, model } = state;
  if (!release || !model) return [];
  const definition = phaseDefinition(model, release.phase);
  if (!definition) return [];
  const conditions: GateCondition[] = [...stillActive(release)];
  for (const task of release.tasks) {
    if (!task.required || task.phase !== release.phase || task.phaseEntry !== release.phaseEntry) continue;
    if (task.status === TaskStatus.CANCELLED) continue;
    conditions.push(
      condition(
        "gate.required_task_done",
        task.taskId,
        `required task "${task.name}" is ${TaskStatus[task.status]}`,
        task.status === TaskStatus.DONE,
      ),
    );
  }
  const approvals = currentApprovals(release);
  for (const requirement of definition.approvals) {
    const group = requirement.approverGroup;
    const approval = approvals.get(group);
    if (!approval) {
      conditions.push(condition("gate.approval_requested", group, `no approval requested from ${group}`, false));
    } else if (approval.status === ApprovalStatus.REJECTED) {
      const by = approval.votes.find((v) => !v.approved);
      conditions.push(
        condition(
          "gate.approval_rejected",
          group,
          `${group} rejected${by ? ` (${by.approver}: ${by.comment})` : ""}; request a new approval`,
          false,
        ),
      );
    } else {
      const granted = approval.votes.filter((v) => v.approved).length;
      conditions.push(
        condition(
          "gate.approval_granted",
          group,
          `${group} approvals ${granted} of ${requirement.quorum}`,
          approval.status === ApprovalStatus.APPROVED,
        ),
      );
    }
  }
  if (definition.requiresLinkedChange) {
    conditions.push(
      condition(
        "gate.linked_change_present",
        "change_request",
        "at least one change request must be linked",
        release.linkedChangeRequestIds.length > 0,
      ),
    );
  }
  if (definition.linkedChangeStates.length) {
    // Models created before CreateReleaseModel stored short names may hold full enum names.
    const accepted = definition.linkedChangeStates.map((entry) => changeStateName(entry) ?? entry);
    const known = new Map(changes.map((c) => [c.changeRequestId, c.state]));
    for (const id of release.linkedChangeRequestIds) {
      const changeState = known.get(id);
      conditions.push(
        condition(
          "gate.linked_change_state",
          id,
          changeState
            ? `change request ${id} is ${changeState}, needs one of ${accepted.join(", ")}`
            : `state of change request ${id} is unknown (no change event received)`,
          changeState !== undefined && accepted.includes(changeState),
        ),
      );
    }
  }
  conditions.push(...droppedOutAfterApproval(state, changes));
  return conditions;
}

/** What a linked change that dropped out after the approval says, by its state. */
const DROPPED_OUT: Readonly<Record<string, { rule: string; description: (id: string) => string }>> = {
  REJECTED: {
    rule: "gate.linked_change_rejected",
    description: (id) =>
      `change request ${id} was rejected after the release's approval; unlink it or raise a new one (production deployments need one)`,
  },
  CANCELLED: {
    rule: "gate.linked_change_cancelled",
    description: (id) =>
      `change request ${id} was cancelled after the release's approval; unlink it or raise a new one (production deployments need one)`,
  },
};

/**
 * Once the phase that required the linked changes' states is behind the release, a linked change
 * rejected or cancelled since (or linked and then rejected or cancelled) closes every later gate
 * until it is unlinked. Not a failure: a change that failed with its deployment must not keep the
 * release from its review.
 */
function droppedOutAfterApproval(state: ReleaseState, changes: LinkedChangeState[]): GateCondition[] {
  const { release, model } = state;
  if (!release || !model) return [];
  const required = model.phases.findIndex((p) => p.linkedChangeStates.length > 0);
  if (required < 0 || phaseIndex(model, release.phase) <= required) return [];
  const known = new Map(changes.map((c) => [c.changeRequestId, c.state]));
  return release.linkedChangeRequestIds.flatMap((id) => {
    const droppedOut = DROPPED_OUT[known.get(id) ?? ""];
    return droppedOut ? [condition(droppedOut.rule, id, droppedOut.description(id), false)] : [];
  });
}
