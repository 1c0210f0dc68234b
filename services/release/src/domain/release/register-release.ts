import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { dueAt, refuse, templateTasks } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function registerRelease(
  command: ReleaseCommandOf<"registerRelease">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  if (state.release) refuse("release.unique_id", `release ${command.releaseId} already exists`, "ALREADY_EXISTS");
  const { kind: _, releaseId, plannedWindow, model, ...fields } = command;
  const first = model.phases[0]?.phase ?? ReleasePhase.REGISTRATION;
  const due = dueAt(model.phases[0], ctx.now);
  return [
    create(ev.ReleaseRegisteredSchema, {
      releaseId,
      ...fields,
      ...(plannedWindow ? { plannedWindow } : {}),
      phase: first,
      model,
      phaseEntry: 1,
      ...(due ? { phaseDueAt: due } : {}),
    }),
    ...templateTasks(releaseId, model, first, 1, ctx),
  ];
}
