/**
 * The environment inventory as a pure fold: which version of which artifact runs on which
 * target, since when, and which deployment (of which release) put it there. Outcomes are
 * applied in the environment's order (environment_sequence, as the configuration service's
 * baselines are), whatever order they arrive in: live and rebuilt inventories are equal.
 */
import { replacedByRollback } from "@rdm/domain-kernel/configuration";

export type OutcomeKind = "SUCCEEDED" | "FAILED" | "ROLLED_BACK";

/** One deployment outcome of an environment, reduced to what the inventory needs. */
export interface InventoryOutcome {
  kind: OutcomeKind;
  /** Position among the environment's deployment events; 0: the event carried none. */
  environmentSequence: bigint;
  /** Order of arrival at this projection: orders outcomes without a sequence (and ties). */
  arrival: bigint;
  deploymentId: string;
  releaseId: string;
  occurredAt: Date;
  artifacts: { artifactId: string; name: string; version: string; targetCiIds: string[] }[];
  /** BLUE_GREEN: the colour serving traffic after it; "" otherwise. */
  liveColour: string;
  /** A rollback's artifact names, whose entries it replaces; empty: it lists the whole inventory. */
  restoredArtifactNames: string[];
  /** The targets a rollback restored those names on; empty: every target. */
  restoredTargetCiIds: string[];
}

export interface InventoryEntry {
  targetCiId: string;
  artifactName: string;
  artifactVersion: string;
  artifactId: string;
  /** Since when this version runs on the target. */
  since: Date;
  /** The deployment (and its release) whose outcome put this version there. */
  deploymentId: string;
  releaseId: string;
  /** How it got there: deployed (SUCCEEDED), left by a failed deployment (FAILED), restored (ROLLED_BACK). */
  via: OutcomeKind;
}

export interface EnvironmentSummary {
  /** DEGRADED while the newest outcome is a failure that was not rolled back. */
  health: "HEALTHY" | "DEGRADED";
  lastDeploymentId: string;
  lastReleaseId: string;
  lastOutcome: OutcomeKind;
  lastEnvironmentSequence: bigint;
  updatedAt: Date;
  /** The colour the newest blue-green outcome left serving traffic ("" when there is none). */
  liveColour: string;
}

/** Outcomes without a sequence (published before the field existed) are the oldest, in arrival order. */
export function inEnvironmentOrder<T extends Pick<InventoryOutcome, "environmentSequence" | "arrival">>(
  outcomes: T[],
): T[] {
  const compare = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
  return [...outcomes].sort(
    (a, b) => compare(a.environmentSequence, b.environmentSequence) || compare(a.arrival, b.arrival),
  );
}

const key = (targetCiId: string, artifactName: string) => `${targetCiId}\u0000${artifactName}`;

/**
 * What a rollback leaves of the inventory before it: other artifact names' entries, and its names'
 * entries on targets it did not restore (none, when it names no artifacts).
 */
function keptByRollback(current: Map<string, InventoryEntry>, outcome: InventoryOutcome): Map<string, InventoryEntry> {
  const replaced = replacedByRollback(outcome);
  return new Map([...current].filter(([, entry]) => !replaced(entry.artifactName, entry.targetCiId)));
}

/**
 * One outcome on top of the inventory before it. A rollback lists what runs under the artifact
 * names it restored on the targets it restored (the whole inventory, when it names none), so
 * entries of those names there it does not list are removed. An entry whose version does not change keeps its `since` and the
 * deployment that first put that version there.
 */
export function applyOutcome(
  current: Map<string, InventoryEntry>,
  outcome: InventoryOutcome,
): Map<string, InventoryEntry> {
  const next = outcome.kind === "ROLLED_BACK" ? keptByRollback(current, outcome) : new Map(current);
  for (const artifact of outcome.artifacts) {
    for (const targetCiId of artifact.targetCiIds) {
      const k = key(targetCiId, artifact.name);
      const before = current.get(k);
      if (before && before.artifactVersion === artifact.version) {
        next.set(k, before);
        continue;
      }
      next.set(k, {
        targetCiId,
        artifactName: artifact.name,
        artifactVersion: artifact.version,
        artifactId: artifact.artifactId,
        since: outcome.occurredAt,
        deploymentId: outcome.deploymentId,
        releaseId: outcome.releaseId,
        via: outcome.kind,
      });
    }
  }
  return next;
}

/** The inventory and summary of one environment from all its outcomes, in any arrival order. */
export function foldInventory(outcomes: InventoryOutcome[]): {
  entries: InventoryEntry[];
  summary: EnvironmentSummary | undefined;
} {
  const ordered = inEnvironmentOrder(outcomes);
  const entries = [...ordered.reduce(applyOutcome, new Map()).values()].sort(
    (a, b) => a.targetCiId.localeCompare(b.targetCiId) || a.artifactName.localeCompare(b.artifactName),
  );
  const newest = ordered.at(-1);
  return {
    entries,
    summary: newest && {
      health: newest.kind === "FAILED" ? "DEGRADED" : "HEALTHY",
      lastDeploymentId: newest.deploymentId,
      lastReleaseId: newest.releaseId,
      lastOutcome: newest.kind,
      lastEnvironmentSequence: newest.environmentSequence,
      updatedAt: newest.occurredAt,
      liveColour: ordered.filter((outcome) => outcome.liveColour).at(-1)?.liveColour ?? "",
    },
  };
}
