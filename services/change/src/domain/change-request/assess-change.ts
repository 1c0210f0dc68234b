import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestAssessedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { boardFor, defaultQuorum, riskOf } from "../risk.js";
import { envelope, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function assessChange(command: C.AssessChange, change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "assess", [ChangeState.SUBMITTED]);
  const risk = riskOf(command.impact, command.urgency);
  const board = boardFor(change.type);
  return [
    create(ChangeRequestAssessedSchema, {
      ...envelope(change, ChangeState.ASSESSED),
      impact: command.impact,
      urgency: command.urgency,
      risk,
      board,
      requiredApprovals: command.requiredApprovals || defaultQuorum(board, risk),
      notes: command.notes,
    }),
  ];
}
