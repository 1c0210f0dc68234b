import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function updatePlanning(command: ReleaseCommandOf<"updatePlanning">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  requireActive(state);
  const { kind: _, plannedWindow, ...fields } = command;
  return [
    create(ev.ReleasePlanningUpdatedSchema, {
      releaseId,
      ...fields,
      ...(plannedWindow ? { plannedWindow } : {}),
      plannedWindowReplaced: true,
    }),
  ];
}
