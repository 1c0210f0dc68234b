import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function setBackOutPlan(command: ReleaseCommandOf<"setBackOutPlan">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  requireActive(state);
  return [create(ev.ReleaseBackOutPlanSetSchema, { releaseId, backOutPlan: command.backOutPlan })];
}
