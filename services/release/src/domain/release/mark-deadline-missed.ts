import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import { instantOf } from "@rdm/proto";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function markDeadlineMissed(
  command: ReleaseCommandOf<"markDeadlineMissed">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  if (release.phaseEntry !== command.phaseEntry) refuse("deadline.phase_current", "the phase was left in time");
  if (!release.phaseDueAt) return refuse("deadline.exists", "the phase has no deadline");
  if (instantOf(release.phaseDueAt) > ctx.now) refuse("deadline.passed", "the deadline has not passed yet");
  if (release.deadlineMisses.some((m) => m.phaseEntry === command.phaseEntry))
    refuse("deadline.missed_once", "the missed deadline was already reported");
  return [
    create(ev.ReleaseDeadlineMissedSchema, {
      releaseId,
      phase: release.phase,
      phaseEntry: release.phaseEntry,
      dueAt: release.phaseDueAt,
    }),
  ];
}
