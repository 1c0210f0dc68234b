import { create } from "@bufbuild/protobuf";
import {
  type Baseline,
  type BaselineEntry,
  BaselineSchema,
  EnvironmentHealth,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type BaselineDeploymentRecorded,
  BaselineDeploymentRecordedSchema,
  DeploymentOutcome,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";

export type BaselineEvent = BaselineDeploymentRecorded;

export interface BaselineState {
  baseline: Baseline | undefined;
  /** Deployment events already applied (ce ids), so a replayed deployment event changes nothing. */
  appliedSourceEvents: Set<string>;
}

export const initialBaselineState = (): BaselineState => ({ baseline: undefined, appliedSourceEvents: new Set() });

/** A deployment event from rdm.deployment.events.v1, reduced to what the baseline needs. */
export interface RecordDeployment {
  kind: "recordDeployment";
  environment: string;
  deploymentId: string;
  releaseId: string;
  outcome: DeploymentOutcome;
  /** What now runs on which CI (one entry per CI and artifact name). */
  entries: BaselineEntry[];
  reason: string;
  sourceEventId: string;
}

export type BaselineCommand = RecordDeployment;

export const baselineStreamId = (environment: string) => `baseline-${environment}`;

export function decideBaseline(command: BaselineCommand, state: BaselineState): BaselineEvent[] {
  if (state.appliedSourceEvents.has(command.sourceEventId)) return [];
  const { kind: _, ...fields } = command;
  return [create(BaselineDeploymentRecordedSchema, fields)];
}

const entryKey = (entry: BaselineEntry) => `${entry.ciId}\u0000${entry.artifactName}`;

/** Entries replace what ran under the same CI and artifact name; everything else stays. */
function applyEntries(current: BaselineEntry[], entries: BaselineEntry[]): BaselineEntry[] {
  const byKey = new Map(current.map((entry) => [entryKey(entry), entry]));
  for (const entry of entries) byKey.set(entryKey(entry), entry);
  return [...byKey.values()].sort(
    (a, b) => a.ciId.localeCompare(b.ciId) || a.artifactName.localeCompare(b.artifactName),
  );
}

export function evolveBaseline(state: BaselineState, event: BaselineEvent): BaselineState {
  const previous = state.baseline ?? create(BaselineSchema, { environment: event.environment });
  const at = event.metadata?.occurredAt;
  const stamped = event.entries.map((entry) => ({
    ...entry,
    deploymentId: entry.deploymentId || event.deploymentId,
    ...(entry.deployedAt || !at ? {} : { deployedAt: at }),
  }));
  const entries = applyEntries(previous.entries, stamped);
  const succeeded = event.outcome === DeploymentOutcome.SUCCEEDED;
  const baseline: Baseline = {
    ...previous,
    entries,
    // Back-out target: the state right after the last successful deployment.
    ...(succeeded
      ? {
          lastKnownGood: entries,
          lastKnownGoodDeploymentId: event.deploymentId,
          ...(at ? { lastKnownGoodAt: at } : {}),
        }
      : {}),
    health: event.outcome === DeploymentOutcome.FAILED ? EnvironmentHealth.DEGRADED : EnvironmentHealth.HEALTHY,
    lastDeploymentId: event.deploymentId,
    ...(at ? { updatedAt: at } : {}),
    version: event.metadata?.streamVersion ?? previous.version + 1n,
  };
  const appliedSourceEvents = new Set(state.appliedSourceEvents);
  if (event.sourceEventId) appliedSourceEvents.add(event.sourceEventId);
  return { baseline, appliedSourceEvents };
}

export const foldBaseline = (events: BaselineEvent[], state = initialBaselineState()): BaselineState =>
  events.reduce(evolveBaseline, state);
