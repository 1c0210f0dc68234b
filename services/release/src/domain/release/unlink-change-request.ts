import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function unlinkChangeRequest(
  command: ReleaseCommandOf<"unlinkChangeRequest">,
  state: ReleaseState,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  if (!release.linkedChangeRequestIds.includes(command.changeRequestId))
    refuse(
      "change.linked",
      `change request ${command.changeRequestId} is not linked`,
      "NOT_FOUND",
      command.changeRequestId,
    );
  return [create(ev.ReleaseChangeRequestUnlinkedSchema, { releaseId, changeRequestId: command.changeRequestId })];
}
