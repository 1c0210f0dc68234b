import { ChangeBoard, ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";

/** The board that authorizes a change of this type until an assessment names one. */
export const boardFor = (type: ChangeType) =>
  type === ChangeType.EMERGENCY
    ? ChangeBoard.ECAB
    : type === ChangeType.STANDARD
      ? ChangeBoard.PRE_AUTHORIZED
      : ChangeBoard.CAB;

/**
 * Whether a deployment to `environment` implements a change naming `environments`: one to an
 * environment it names or, when it names none, one to production (an RFC without environments
 * changes production). The change service moves a change by it; the deployment gates hold a
 * deployment to the changes it implements.
 */
export const implementedIn = (environments: readonly string[], environment: string, production: boolean) =>
  environments.length === 0 ? production : environments.includes(environment);

/** Changes whose window is booked on the calendar: the ones that can collide. */
export const BOOKED_STATES: readonly ChangeState[] = [ChangeState.SCHEDULED, ChangeState.IMPLEMENTING];
