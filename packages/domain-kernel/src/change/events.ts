import type {
  ChangeApprovalRecorded,
  ChangeImplementationStarted,
  ChangeRequestAssessed,
  ChangeRequestAuthorized,
  ChangeRequestCancelled,
  ChangeRequestClosed,
  ChangeRequestDetailsUpdated,
  ChangeRequestEnvironmentImplemented,
  ChangeRequestFailed,
  ChangeRequestImplementationAwaitingTasks,
  ChangeRequestImplemented,
  ChangeRequestRaised,
  ChangeRequestRejected,
  ChangeRequestReleaseLinked,
  ChangeRequestReleaseUnlinked,
  ChangeRequestReviewed,
  ChangeRequestScheduled,
  ChangeRequestSubmitted,
  ChangeTaskAdded,
  ChangeTaskCompleted,
  FreezeWindowDeclared,
  FreezeWindowLifted,
  StandardChangeTemplateRegistered,
  StandardChangeTemplateRetired,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";

/** The events of a change request's stream: the change service's fold and every read side's. */
export type ChangeRequestEvent =
  | ChangeRequestRaised
  | ChangeRequestDetailsUpdated
  | ChangeRequestSubmitted
  | ChangeRequestAssessed
  | ChangeApprovalRecorded
  | ChangeRequestAuthorized
  | ChangeRequestRejected
  | ChangeRequestScheduled
  | ChangeImplementationStarted
  | ChangeRequestEnvironmentImplemented
  | ChangeRequestImplementationAwaitingTasks
  | ChangeRequestImplemented
  | ChangeRequestFailed
  | ChangeRequestReviewed
  | ChangeRequestClosed
  | ChangeRequestCancelled
  | ChangeTaskAdded
  | ChangeTaskCompleted
  | ChangeRequestReleaseLinked
  | ChangeRequestReleaseUnlinked;

export type FreezeWindowEvent = FreezeWindowDeclared | FreezeWindowLifted;

export type StandardChangeTemplateEvent = StandardChangeTemplateRegistered | StandardChangeTemplateRetired;

/** Every message published on rdm.change.events.v1. */
export type ChangeServiceEvent = ChangeRequestEvent | FreezeWindowEvent | StandardChangeTemplateEvent;
