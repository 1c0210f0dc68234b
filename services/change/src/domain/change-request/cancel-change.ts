import { create } from "@bufbuild/protobuf";
import { sameSubject } from "@rdm/auth";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestCancelledSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, requireState, stateName } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

/** The states a change can be withdrawn in: its implementation has not started. */
export const CANCELLABLE: readonly ChangeState[] = [
  ChangeState.DRAFT,
  ChangeState.SUBMITTED,
  ChangeState.ASSESSED,
  ChangeState.AUTHORIZED,
  ChangeState.SCHEDULED,
];

/** Once implementation started, the change ends through its review (a failure has a back-out plan). */
const IMPLEMENTATION_STARTED: readonly ChangeState[] = [
  ChangeState.IMPLEMENTING,
  ChangeState.IMPLEMENTED,
  ChangeState.FAILED,
  ChangeState.REVIEWED,
];

export function cancelChange(command: C.CancelChange, change: ChangeRequest): ChangeRequestEvent[] {
  if (IMPLEMENTATION_STARTED.includes(change.state)) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.cancel.implementation_started",
      `cannot cancel change ${change.key} in state ${stateName(change.state)}: its implementation has started; fail or review it instead`,
    );
  }
  // REJECTED, CANCELLED and CLOSED are final.
  requireState(change, "cancel", CANCELLABLE);
  // Who may act, not what state the change is in: PERMISSION_DENIED, as for votes.
  if (!command.byChangeManager && !sameSubject(command.actor, change.requester)) {
    throw changeRuleViolation(
      "PERMISSION_DENIED",
      "change.cancel.requester_or_change_manager",
      `${command.actor} neither requested change ${change.key} nor is a change manager, and cannot cancel it`,
    );
  }
  return [
    create(ChangeRequestCancelledSchema, {
      ...envelope(change, ChangeState.CANCELLED),
      reason: command.reason,
      cancelledBy: command.actor,
      previousState: change.state,
    }),
  ];
}
