import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { requireGate } from "./gate.js";
import { nextPhase, phaseName, refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function closeRelease(command: ReleaseCommandOf<"closeRelease">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release, model } = requireActive(state);
  if (nextPhase(model, release.phase) !== ReleasePhase.CLOSED)
    refuse("close.from_last_phase", `a release closes from the phase before CLOSED, not ${phaseName(release.phase)}`);
  if (!release.review) refuse("close.review_required", "the post-implementation review must be recorded first");
  requireGate(state, command.changes);
  return [create(ev.ReleaseClosedSchema, { releaseId, outcome: release.review?.outcome })];
}
