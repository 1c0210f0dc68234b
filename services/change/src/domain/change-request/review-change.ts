import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestReviewedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { envelope, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function reviewChange(command: C.ReviewChange, change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "review", [ChangeState.IMPLEMENTED, ChangeState.FAILED]);
  return [
    create(ChangeRequestReviewedSchema, {
      ...envelope(change, ChangeState.REVIEWED),
      outcome: command.outcome,
      notes: command.notes,
    }),
  ];
}
