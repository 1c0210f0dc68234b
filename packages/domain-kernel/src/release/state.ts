import type * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { PhaseDefinition, ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import type { Release, ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

/** Events of the release aggregate, as protobuf messages (their $typeName is the CloudEvents type). */
export type ReleaseEvent =
  | ev.ReleaseRegistered
  | ev.ReleasePlanningUpdated
  | ev.ReleasePhaseAdvanced
  | ev.ReleasePhaseReworked
  | ev.ReleaseAbandoned
  | ev.ReleaseClosed
  | ev.ReleaseApprovalRequested
  | ev.ReleaseApprovalGranted
  | ev.ReleaseApprovalRejected
  | ev.ReleaseTaskAdded
  | ev.ReleaseTaskAssigned
  | ev.ReleaseTaskStarted
  | ev.ReleaseTaskCompleted
  | ev.ReleaseTaskCancelled
  | ev.ReleaseChangeRequestLinked
  | ev.ReleaseChangeRequestUnlinked
  | ev.ReleaseArtifactAttached
  | ev.ReleaseArtifactDetached
  | ev.ReleasePackageFrozen
  | ev.ReleaseBackOutPlanSet
  | ev.ReleaseLogEntryRecorded
  | ev.ReleaseReviewRecorded
  | ev.ReleaseDeadlineMissed
  | ev.ReleaseDeadlineEscalated
  | ev.ReleaseNotificationRequested
  | ev.ReleaseTaskOverdue
  | ev.ReleaseDeploymentRecorded
  | ev.ReleaseDeviationRecorded;

export interface ReleaseState {
  /** Undefined until the release is registered. */
  release: Release | undefined;
  /** The model version pinned at registration. */
  model: ReleaseModel | undefined;
}

export const initialState = (): ReleaseState => ({ release: undefined, model: undefined });

/** The state of a change request as the release service last heard of it (local read model). */
export interface LinkedChangeState {
  changeRequestId: string;
  /** Change state name without prefix, e.g. "AUTHORIZED"; undefined when no event was seen. */
  state: string | undefined;
  /**
   * The production environments the change names, as the release service knows the change's
   * environments and which environments are production (sorted); empty or unset: it names none.
   */
  productionEnvironments?: string[];
}

export function phaseDefinition(model: ReleaseModel, phase: ReleasePhase): PhaseDefinition | undefined {
  return model.phases.find((p) => p.phase === phase);
}

export function phaseIndex(model: ReleaseModel, phase: ReleasePhase): number {
  return model.phases.findIndex((p) => p.phase === phase);
}

export function nextPhase(model: ReleaseModel, phase: ReleasePhase): ReleasePhase | undefined {
  return model.phases[phaseIndex(model, phase) + 1]?.phase;
}
