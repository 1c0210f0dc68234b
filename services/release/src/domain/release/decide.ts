import type { DecisionContext } from "@rdm/command-handler";
import { abandonRelease } from "./abandon-release.js";
import { addTask } from "./add-task.js";
import { advancePhase } from "./advance-phase.js";
import { approveRelease } from "./approve-release.js";
import { assignTask } from "./assign-task.js";
import { attachArtifact } from "./attach-artifact.js";
import { cancelTask } from "./cancel-task.js";
import { closeRelease } from "./close-release.js";
import { completeTask } from "./complete-task.js";
import { detachArtifact } from "./detach-artifact.js";
import { escalateDeadline } from "./escalate-deadline.js";
import { linkChangeRequest } from "./link-change-request.js";
import { markDeadlineMissed } from "./mark-deadline-missed.js";
import { markTaskOverdue } from "./mark-task-overdue.js";
import { moveOnAfterProduction, recordDeploymentOutcome } from "./record-deployment-outcome.js";
import { recordLogEntry } from "./record-log-entry.js";
import { recordReview } from "./record-review.js";
import { registerRelease } from "./register-release.js";
import { rejectRelease } from "./reject-release.js";
import { requestApproval } from "./request-approval.js";
import { reworkRelease } from "./rework-release.js";
import { setBackOutPlan } from "./set-back-out-plan.js";
import { startTask } from "./start-task.js";
import type { ReleaseCommand, ReleaseEvent, ReleaseState } from "./types.js";
import { unlinkChangeRequest } from "./unlink-change-request.js";
import { updatePlanning } from "./update-planning.js";

/** Decides a command against the state; returns the events to append or throws a RuleViolation. */
export function decide(command: ReleaseCommand, state: ReleaseState, ctx: DecisionContext): ReleaseEvent[] {
  switch (command.kind) {
    case "registerRelease":
      return registerRelease(command, state, ctx);
    case "updatePlanning":
      return updatePlanning(command, state);
    case "advancePhase":
      return advancePhase(command, state, ctx);
    case "reworkRelease":
      return reworkRelease(command, state, ctx);
    case "abandonRelease":
      return abandonRelease(command, state);
    case "closeRelease":
      return closeRelease(command, state);
    case "requestApproval":
      return requestApproval(command, state);
    case "approveRelease":
      return approveRelease(command, state, ctx);
    case "rejectRelease":
      return rejectRelease(command, state, ctx);
    case "addTask":
      return addTask(command, state);
    case "assignTask":
      return assignTask(command, state);
    case "startTask":
      return startTask(command, state);
    case "completeTask":
      return completeTask(command, state);
    case "cancelTask":
      return cancelTask(command, state);
    case "linkChangeRequest":
      return linkChangeRequest(command, state);
    case "unlinkChangeRequest":
      return unlinkChangeRequest(command, state, ctx);
    case "attachArtifact":
      return attachArtifact(command, state);
    case "detachArtifact":
      return detachArtifact(command, state);
    case "setBackOutPlan":
      return setBackOutPlan(command, state);
    case "recordLogEntry":
      return recordLogEntry(command, state, ctx);
    case "recordReview":
      return recordReview(command, state, ctx);
    case "markDeadlineMissed":
      return markDeadlineMissed(command, state, ctx);
    case "escalateDeadline":
      return escalateDeadline(command, state, ctx);
    case "markTaskOverdue":
      return markTaskOverdue(command, state, ctx);
    case "recordDeploymentOutcome":
      return recordDeploymentOutcome(command, state, ctx);
    case "moveOnAfterProduction":
      return moveOnAfterProduction(command, state, ctx);
    default:
      return unknownCommand(command);
  }
}

function unknownCommand(command: never): never {
  throw new Error(`unknown release command ${(command as { kind?: unknown }).kind}`);
}
