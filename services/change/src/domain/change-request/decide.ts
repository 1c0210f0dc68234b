import { addTask } from "./add-task.js";
import { approveChange } from "./approve-change.js";
import { assessChange } from "./assess-change.js";
import { cancelChange } from "./cancel-change.js";
import { closeChange } from "./close-change.js";
import { completeImplementation } from "./complete-implementation.js";
import { completeTask } from "./complete-task.js";
import { failImplementation } from "./fail-implementation.js";
import { linkRelease } from "./link-release.js";
import { raiseChange } from "./raise-change.js";
import { rejectChange } from "./reject-change.js";
import { reviewChange } from "./review-change.js";
import { requireChange } from "./rules.js";
import { scheduleChange } from "./schedule-change.js";
import { startImplementation } from "./start-implementation.js";
import { submitChange } from "./submit-change.js";
import type * as C from "./types.js";
import type { ChangeRequestCommand, ChangeRequestEvent, ChangeRequestState } from "./types.js";
import { unlinkRelease } from "./unlink-release.js";
import { updateChange } from "./update-change.js";

/** Decides a command against the state; returns the events to append or throws a rule violation. */
export function decide(command: ChangeRequestCommand, state: ChangeRequestState): ChangeRequestEvent[] {
  if (command.kind === "raiseChange") return raiseChange(command, state);
  const change = requireChange(state);
  switch (command.kind) {
    case "updateChange":
      return updateChange(command, change);
    case "submitChange":
      return submitChange(change, command.template);
    case "assessChange":
      return assessChange(command, change);
    case "approveChange":
      return approveChange(command, change);
    case "rejectChange":
      return rejectChange(command, change);
    case "scheduleChange":
      return scheduleChange(command, change);
    case "startImplementation":
      return startImplementation(command, change);
    case "completeImplementation":
      return completeImplementation(command, change);
    case "failImplementation":
      return failImplementation(command, change);
    case "reviewChange":
      return reviewChange(command, change);
    case "closeChange":
      return closeChange(change);
    case "cancelChange":
      return cancelChange(command, change);
    case "addTask":
      return addTask(command, change);
    case "completeTask":
      return completeTask(command, change);
    case "linkRelease":
      if (alreadyMirrored(command, state)) return [];
      return linkRelease(command, change, state.releaseLinkConfirmed ?? false);
    case "unlinkRelease":
      if (alreadyMirrored(command, state)) return [];
      return unlinkRelease(command, change);
    default:
      return unknownCommand(command);
  }
}

function unknownCommand(command: never): never {
  throw new Error(`unknown change request command ${(command as { kind?: unknown }).kind}`);
}

/** A release's link or unlink event no newer than the last one of that release mirrored here. */
const alreadyMirrored = (command: C.LinkRelease | C.UnlinkRelease, state: ChangeRequestState) =>
  (command.releaseEventVersion ?? 0n) > 0n &&
  (command.releaseEventVersion ?? 0n) <= (state.releaseEventVersions?.get(command.releaseId) ?? 0n);
