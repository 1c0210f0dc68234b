import { create } from "@bufbuild/protobuf";
import {
  type BaselineEvent,
  type BaselineState,
  foldBaseline,
  initialBaselineState,
} from "@rdm/domain-kernel/configuration";
import type { BaselineArtifact, BaselineEntry } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  BaselineDeploymentRecordedSchema,
  type DeploymentOutcome,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";

export type { BaselineEvent, BaselineState } from "@rdm/domain-kernel/configuration";
export const initialState = initialBaselineState;

/** A deployment event from rdm.deployment.events.v1, reduced to what the baseline needs. */
export interface RecordDeployment {
  kind: "recordDeployment";
  environment: string;
  deploymentId: string;
  releaseId: string;
  outcome: DeploymentOutcome;
  /**
   * What now runs on which CI (one entry per CI and artifact name); for a rollback, everything that
   * runs under `restoredArtifactNames` (no names: everything that runs).
   */
  entries: BaselineEntry[];
  /** The same grouped by artifact, for a deployment too large for an entry per pair. */
  artifacts: BaselineArtifact[];
  reason: string;
  /** A rollback's artifact names, whose entries it replaces; empty: it restored the whole baseline. */
  restoredArtifactNames: string[];
  /** The CIs a rollback restored those names on; empty: every CI (recorded before rollbacks named them). */
  restoredTargetCiIds: string[];
  sourceEventId: string;
  /** The outcome's position among the environment's deployment events; 0n when the event carried none. */
  environmentSequence: bigint;
}

export type BaselineCommand = RecordDeployment;

export const baselineStreamId = (environment: string) => `baseline-${environment}`;

/**
 * Every outcome not seen before is recorded, also one older than outcomes already recorded
 * (it arrived late from another partition): the baseline is the fold in environment order
 * (see `fold`), so where the late outcome lands is decided there, the same way live and
 * on a rebuild.
 */
export function decide(command: BaselineCommand, state: BaselineState): BaselineEvent[] {
  if (state.appliedSourceEvents.has(command.sourceEventId)) return [];
  const sequence = command.environmentSequence;
  if (sequence > 0n && state.appliedSequences.has(sequence)) return [];
  const { kind: _, ...fields } = command;
  return [create(BaselineDeploymentRecordedSchema, fields)];
}

// The fold in environment order is a kernel rule: the gateway's baselines fold the same events
// with the same function, so it lives once in @rdm/domain-kernel.
export const fold = foldBaseline;
