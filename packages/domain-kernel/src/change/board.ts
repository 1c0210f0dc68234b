import { ChangeBoard, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";

/** The board that authorizes a change of this type until an assessment names one. */
export const boardFor = (type: ChangeType) =>
  type === ChangeType.EMERGENCY
    ? ChangeBoard.ECAB
    : type === ChangeType.STANDARD
      ? ChangeBoard.PRE_AUTHORIZED
      : ChangeBoard.CAB;
