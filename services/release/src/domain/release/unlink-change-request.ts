import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import { evolve } from "@rdm/domain-kernel/release";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleaseStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { moveOnAfterProduction } from "./record-deployment-outcome.js";
import { IMPLEMENTATION_STATES, refuse, requireActive, requireRelease, sameId } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

/**
 * Unlinks a change request from the release. A change that held the release in DEPLOYMENT after
 * its production success (one naming a production region not deployed yet, or one rejected or
 * cancelled after the approval) holds it no more: with the other changes' states (`changes`),
 * the release moves on as it would have at the success.
 */
export function unlinkChangeRequest(
  command: ReleaseCommandOf<"unlinkChangeRequest">,
  state: ReleaseState,
  ctx: DecisionContext,
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
  const unlinked = create(ev.ReleaseChangeRequestUnlinkedSchema, {
    releaseId,
    changeRequestId: linked,
    reason: command.reason ?? "",
  });
  const others = command.changes?.filter((change) => change.changeRequestId !== linked);
  const movesOn = others
    ? moveOnAfterProduction({ kind: "moveOnAfterProduction", changes: others }, evolve(state, unlinked), ctx)
    : [];
  return [unlinked, ...movesOn];
}
