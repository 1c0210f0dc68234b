// The change request aggregate: one decider function per command in ./change-request/, composed here.
export { decide } from "./change-request/decide.js";
export { evolve, fold, initialState } from "./change-request/evolve.js";
export type {
  AddTask,
  ApproveChange,
  AssessChange,
  BoardGroups,
  CancelChange,
  ChangeDetails,
  ChangeRequestCommand,
  ChangeRequestEvent,
  ChangeRequestState,
  CloseChange,
  CompleteImplementation,
  CompleteTask,
  FailImplementation,
  LinkRelease,
  RaiseChange,
  RejectChange,
  ReviewChange,
  ScheduleChange,
  StartImplementation,
  SubmitChange,
  UnlinkRelease,
  UpdateChange,
  Vote,
} from "./change-request/types.js";
export { DEFAULT_BOARD_GROUPS } from "./change-request/types.js";

/** Human-readable change key, e.g. CHG-2026-0042 (sequence numbers per year; gaps allowed). */
export const changeKey = (year: number, sequence: number) => `CHG-${year}-${String(sequence).padStart(4, "0")}`;
