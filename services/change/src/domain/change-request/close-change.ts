import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestClosedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { envelope, requireState } from "./rules.js";
import type { ChangeRequestEvent } from "./types.js";

export function closeChange(change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "close", [ChangeState.REVIEWED, ChangeState.REJECTED]);
  return [create(ChangeRequestClosedSchema, envelope(change, ChangeState.CLOSED))];
}
