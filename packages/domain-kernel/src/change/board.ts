import { ChangeBoard, ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";

/** The board that authorizes a change of this type until an assessment names one. */
export const boardFor = (type: ChangeType) =>
  type === ChangeType.EMERGENCY
    ? ChangeBoard.ECAB
    : type === ChangeType.STANDARD
      ? ChangeBoard.PRE_AUTHORIZED
      : ChangeBoard.CAB;

/** Changes whose window is booked on the calendar: the ones that can collide. */
export const BOOKED_STATES: readonly ChangeState[] = [ChangeState.SCHEDULED, ChangeState.IMPLEMENTING];
