import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import { instantOf } from "@rdm/proto";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { durationMs } from "../models.js";
import { refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function escalateDeadline(
  command: ReleaseCommandOf<"escalateDeadline">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release, model } = requireActive(state);
  if (release.phaseEntry !== command.phaseEntry) refuse("deadline.phase_current", "the phase was left meanwhile");
  const miss = release.deadlineMisses.find((m) => m.phaseEntry === command.phaseEntry);
  if (!miss?.dueAt) return refuse("deadline.missed_first", "the deadline was not reported missed");
  if (miss.escalated) refuse("deadline.escalated_once", "the missed deadline was already escalated");
  if (instantOf(miss.dueAt).getTime() + durationMs(model.escalationGrace) > ctx.now.getTime())
    refuse("deadline.grace_passed", "the escalation grace period has not passed yet");
  return [
    create(ev.ReleaseDeadlineEscalatedSchema, {
      releaseId,
      phase: miss.phase,
      phaseEntry: miss.phaseEntry,
      dueAt: miss.dueAt,
    }),
  ];
}
