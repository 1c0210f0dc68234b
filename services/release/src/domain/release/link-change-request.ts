import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive, sameId } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function linkChangeRequest(command: ReleaseCommandOf<"linkChangeRequest">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  const linked = release.linkedChangeRequestIds.find((id) => sameId(id, command.changeRequestId));
  if (command.relink)
    return linked === undefined
      ? []
      : [create(ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId: linked, relinked: true })];
  if (linked !== undefined) {
    // The change's own link mirrored here: already so, nothing to record (and nothing to mirror back).
    if (command.mirror) return [];
    refuse(
      "change.not_linked",
      `change request ${command.changeRequestId} is already linked`,
      "ALREADY_EXISTS",
      command.changeRequestId,
    );
  }
  // The change service links no closed change: refused here too, rather than listed on one side.
  if (command.changeState === "CLOSED")
    refuse(
      "change.closed",
      `change request ${command.changeRequestId} is CLOSED: raise a new change for this release`,
      "FAILED_PRECONDITION",
      command.changeRequestId,
    );
  // A change request implements one release.
  const elsewhere = command.changeLinkedTo ?? "";
  if (elsewhere && !sameId(elsewhere, releaseId))
    refuse(
      "change.linked_elsewhere",
      `change request ${command.changeRequestId} is linked to release ${elsewhere}: unlink it there first`,
      "FAILED_PRECONDITION",
      command.changeRequestId,
    );
  return [create(ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId: command.changeRequestId })];
}
