import { create } from "@bufbuild/protobuf";
import {
  type Baseline,
  type BaselineEntry,
  BaselineEntrySchema,
  BaselineSchema,
  EnvironmentHealth,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { type BaselineDeploymentRecorded, DeploymentOutcome } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";

export type BaselineEvent = BaselineDeploymentRecorded;

export interface BaselineState {
  baseline: Baseline | undefined;
  /** Deployment events already recorded (ce ids), so a replayed deployment event changes nothing. */
  appliedSourceEvents: Set<string>;
  /** Environment sequences already recorded: the same outcome published again under another ce id counts once. */
  appliedSequences: Set<bigint>;
}

export const initialBaselineState = (): BaselineState => ({
  baseline: undefined,
  appliedSourceEvents: new Set(),
  appliedSequences: new Set(),
});

const entryKey = (entry: BaselineEntry) => `${entry.ciId}\u0000${entry.artifactName}`;
const byCiAndName = (a: BaselineEntry, b: BaselineEntry) =>
  a.ciId.localeCompare(b.ciId) || a.artifactName.localeCompare(b.artifactName);

/** Entries replace what ran under the same CI and artifact name; everything else stays. */
function upsertEntries(current: BaselineEntry[], entries: BaselineEntry[]): BaselineEntry[] {
  const byKey = new Map(current.map((entry) => [entryKey(entry), entry]));
  for (const entry of entries) byKey.set(entryKey(entry), entry);
  return [...byKey.values()].sort(byCiAndName);
}

/** What a rollback says it restored: the artifact names, and the targets it restored them on. */
export interface RestoredScope {
  restoredArtifactNames: readonly string[];
  restoredTargetCiIds: readonly string[];
}

/**
 * Whether a rollback replaces what runs under `artifactName` on `ciId`: it does for its artifact
 * names on the targets it restored them on (every target, when it names none: recorded before
 * rollbacks named them), and for everything when it names no artifacts (recorded before rollbacks
 * named those: it lists the whole baseline restored). The CMDB baseline, the gateway's inventory
 * and the deployment service's baseline fold rollbacks by this one rule.
 */
export function replacedByRollback(scope: RestoredScope): (artifactName: string, ciId: string) => boolean {
  const names = new Set(scope.restoredArtifactNames);
  const targets = new Set(scope.restoredTargetCiIds);
  return (artifactName, ciId) =>
    names.size === 0 || (names.has(artifactName) && (targets.size === 0 || targets.has(ciId)));
}

/**
 * A rollback lists what runs where it replaced entries (replacedByRollback): the entries there it
 * does not list were added by the failed deployment and go away; the others stay. One it lists
 * elsewhere (a blue-green rollback lists the live colour's too) that runs that version already
 * stays as it was, with the deployment that put it there.
 */
function restoredEntries(current: BaselineEntry[], event: BaselineEvent, restored: BaselineEntry[]): BaselineEntry[] {
  const replaced = replacedByRollback(event);
  const before = new Map(current.map((entry) => [entryKey(entry), entry]));
  return upsertEntries(
    current.filter((entry) => !replaced(entry.artifactName, entry.ciId)),
    restored.map((entry) => {
      const kept = before.get(entryKey(entry));
      const unchanged = kept?.artifactVersion === entry.artifactVersion && !replaced(entry.artifactName, entry.ciId);
      return unchanged && kept ? kept : entry;
    }),
  );
}

/** The entries an outcome records: its entries, then each of its artifacts on each of its CIs. */
function recordedEntries(event: BaselineEvent): BaselineEntry[] {
  const grouped = event.artifacts.flatMap(({ ciIds, artifactId, artifactName, artifactVersion }) =>
    ciIds.map((ciId) => create(BaselineEntrySchema, { ciId, artifactId, artifactName, artifactVersion })),
  );
  return grouped.length > 0 ? [...event.entries, ...grouped] : event.entries;
}

/**
 * One recorded outcome applied on top of the baseline before it (in environment order);
 * `succeeded`: the deployments whose success came before it.
 */
function applyOutcome(previous: Baseline, event: BaselineEvent, succeeded: ReadonlySet<string>): Baseline {
  const at = event.metadata?.occurredAt;
  const stamped = recordedEntries(event).map((entry) => ({
    ...entry,
    deploymentId: entry.deploymentId || event.deploymentId,
    ...(entry.deployedAt || !at ? {} : { deployedAt: at }),
  }));
  const entries =
    event.outcome === DeploymentOutcome.ROLLED_BACK
      ? restoredEntries(previous.entries, event, stamped)
      : upsertEntries(previous.entries, stamped);
  const success = event.outcome === DeploymentOutcome.SUCCEEDED;
  // A successful deployment backed out since was not good after all: what it restored is taken
  // back in the last known good too (its names on its targets; all of it, for an older rollback).
  const backedOutSuccess = event.outcome === DeploymentOutcome.ROLLED_BACK && succeeded.has(event.deploymentId);
  return {
    ...previous,
    entries,
    // Back-out target: the state right after the last successful deployment.
    ...(success
      ? {
          lastKnownGood: entries,
          lastKnownGoodDeploymentId: event.deploymentId,
          ...(at ? { lastKnownGoodAt: at } : {}),
        }
      : {}),
    ...(backedOutSuccess ? { lastKnownGood: restoredEntries(previous.lastKnownGood, event, stamped) } : {}),
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
export function foldBaseline(history: BaselineEvent[]): BaselineState {
  const state = initialBaselineState();
  for (const event of history) {
    if (event.sourceEventId) state.appliedSourceEvents.add(event.sourceEventId);
    if (event.environmentSequence > 0n) state.appliedSequences.add(event.environmentSequence);
  }
  const [first] = history;
  if (!first) return state;
  const succeeded = new Set<string>();
  const folded = inEnvironmentOrder(history).reduce(
    (previous, event) => {
      const next = applyOutcome(previous, event, succeeded);
      if (event.outcome === DeploymentOutcome.SUCCEEDED) succeeded.add(event.deploymentId);
      return next;
    },
    create(BaselineSchema, { environment: first.environment }),
  );
  const version = history.at(-1)?.metadata?.streamVersion ?? BigInt(history.length);
  return { ...state, baseline: { ...folded, version } };
}
