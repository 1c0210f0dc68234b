import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { dueAt, phaseDefinition, phaseIndex, phaseName, refuse, requireActive, templateTasks } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function reworkRelease(
  command: ReleaseCommandOf<"reworkRelease">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release, model } = requireActive(state);
  const target = phaseIndex(model, command.toPhase);
  if (target < 0) refuse("rework.phase_in_model", `${phaseName(command.toPhase)} is not a phase of the model`);
  if (target >= phaseIndex(model, release.phase))
    refuse("rework.earlier_phase", `rework must go back to a phase before ${phaseName(release.phase)}`);
  if (!command.reason.trim()) refuse("rework.reason_required", "a reason is required");
  const entry = release.phaseEntry + 1;
  const due = dueAt(phaseDefinition(model, command.toPhase), ctx.now);
  return [
    create(ev.ReleasePhaseReworkedSchema, {
      releaseId,
      fromPhase: release.phase,
      toPhase: command.toPhase,
      phaseEntry: entry,
      reason: command.reason,
      ...(due ? { phaseDueAt: due } : {}),
    }),
    ...templateTasks(releaseId, model, command.toPhase, entry, ctx),
  ];
}
