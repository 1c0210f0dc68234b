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
  /** Deployment events already recorded (ce ids), so a replayed deployment event changes nothing. */
  appliedSourceEvents: Set<string>;
  /** Environment sequences already recorded: the same outcome published again under another ce id counts once. */
  appliedSequences: Set<bigint>;
}

export const initialState = (): BaselineState => ({
  baseline: undefined,
  appliedSourceEvents: new Set(),
  appliedSequences: new Set(),
});

/** A deployment event from rdm.deployment.events.v1, reduced to what the baseline needs. */
export interface RecordDeployment {
  kind: "recordDeployment";
  environment: string;
  deploymentId: string;
  releaseId: string;
  outcome: DeploymentOutcome;
  /** What now runs on which CI (one entry per CI and artifact name); for a rollback, everything that runs. */
  entries: BaselineEntry[];
  reason: string;
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

const entryKey = (entry: BaselineEntry) => `${entry.ciId}\u0000${entry.artifactName}`;
const byCiAndName = (a: BaselineEntry, b: BaselineEntry) =>
  a.ciId.localeCompare(b.ciId) || a.artifactName.localeCompare(b.artifactName);

/** Entries replace what ran under the same CI and artifact name; everything else stays. */
function upsertEntries(current: BaselineEntry[], entries: BaselineEntry[]): BaselineEntry[] {
  const byKey = new Map(current.map((entry) => [entryKey(entry), entry]));
  for (const entry of entries) byKey.set(entryKey(entry), entry);
  return [...byKey.values()].sort(byCiAndName);
}

/** One recorded outcome applied on top of the baseline before it (in environment order). */
function applyOutcome(previous: Baseline, event: BaselineEvent): Baseline {
  const at = event.metadata?.occurredAt;
  const stamped = event.entries.map((entry) => ({
    ...entry,
    deploymentId: entry.deploymentId || event.deploymentId,
    ...(entry.deployedAt || !at ? {} : { deployedAt: at }),
  }));
  // A rollback names the whole baseline it restored: what the failed deployment added goes away.
  const entries =
    event.outcome === DeploymentOutcome.ROLLED_BACK
      ? [...stamped].sort(byCiAndName)
      : upsertEntries(previous.entries, stamped);
  const succeeded = event.outcome === DeploymentOutcome.SUCCEEDED;
  return {
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
  };
}

/**
 * The recorded outcomes in the environment's order: by environment_sequence, which the
 * deployment service assigns when it appends the outcome. Outcomes without one (0: published
 * before the field existed, so older than every sequenced outcome) come first, in the order
 * they were recorded, which is how baselines were kept before; so do ties (never expected).
 */
export function inEnvironmentOrder(events: BaselineEvent[]): BaselineEvent[] {
  return events
    .map((event, recorded) => ({ event, recorded }))
    .sort(
      (a, b) =>
        (a.event.environmentSequence < b.event.environmentSequence ? -1 : 0) ||
        (a.event.environmentSequence > b.event.environmentSequence ? 1 : 0) ||
        a.recorded - b.recorded,
    )
    .map(({ event }) => event);
}

/**
 * The baseline from the environment's whole history: the recorded outcomes folded in
 * environment order, whatever order they were recorded in. An outcome that arrives after a
 * newer one (another partition, a lagging or rebuilding consumer) never overrides what the
 * newer one set or removed; it only fills in what no newer outcome touched. So the live
 * baseline and one rebuilt from the topic are equal. `version` is the stream version.
 */
export function fold(history: BaselineEvent[]): BaselineState {
  // No per-event evolve: an outcome's place depends on the whole history (environment order).
  const state = initialState();
  for (const event of history) {
    if (event.sourceEventId) state.appliedSourceEvents.add(event.sourceEventId);
    if (event.environmentSequence > 0n) state.appliedSequences.add(event.environmentSequence);
  }
  const [first] = history;
  if (!first) return state;
  const folded = inEnvironmentOrder(history).reduce(
    applyOutcome,
    create(BaselineSchema, { environment: first.environment }),
  );
  const version = history.at(-1)?.metadata?.streamVersion ?? BigInt(history.length);
  return { ...state, baseline: { ...folded, version } };
}

// The names before every aggregate exported decide/fold/initialState, still used by the decider tests
// and by the gateway (`@rdm/configuration/baseline`).
export { decide as decideBaseline, fold as foldBaseline };
