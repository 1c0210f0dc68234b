import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleaseStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { IMPLEMENTATION_STATES, refuse, requireActive, requireRelease, sameId } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function unlinkChangeRequest(
  command: ReleaseCommandOf<"unlinkChangeRequest">,
  state: ReleaseState,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  // An abandoned release lets go of its changes, for another release to take them.
  const { release } = requireRelease(state);
  if (release.status !== ReleaseStatus.ABANDONED) requireActive(state);
  // Ids in either case are the same UUID: the one as linked is the one unlinked.
  const linked = release.linkedChangeRequestIds.find((id) => sameId(id, command.changeRequestId));
  if (linked !== undefined && !command.mirror && command.changeState && IMPLEMENTATION_STATES.has(command.changeState))
    refuse(
      "change.implementation_begun",
      `change request ${linked} is ${command.changeState}: it records this release's implementation and stays linked (the review reads it)`,
      "FAILED_PRECONDITION",
      linked,
    );
  if (linked === undefined) {
    // The change's word mirrored here: not linked already, nothing to record.
    if (command.mirror) return [];
    refuse(
      "change.linked",
      `change request ${command.changeRequestId} is not linked`,
      "NOT_FOUND",
      command.changeRequestId,
    );
  }
  return [create(ev.ReleaseChangeRequestUnlinkedSchema, { releaseId, changeRequestId: linked })];
}
