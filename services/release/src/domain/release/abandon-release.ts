import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function abandonRelease(command: ReleaseCommandOf<"abandonRelease">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  if (!command.reason.trim()) refuse("abandon.reason_required", "a reason is required");
  return [create(ev.ReleaseAbandonedSchema, { releaseId, phase: release.phase, reason: command.reason })];
}
