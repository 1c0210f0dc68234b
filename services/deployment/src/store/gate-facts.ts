import type { Deployment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeploymentStrategyKind,
  type Environment,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { deploySteps, deployTargets } from "../domain/baseline.js";
import { allTargets, groupTargets } from "../domain/environment.js";
import type { GateFacts } from "../domain/gates.js";
import { isProduction, packageKey, packageSucceededIn, type Queryable, runningDeployment } from "./tables.js";

/**
 * The targets the plan deploys to that are no longer where it deploys them (ids compared without
 * case): out of the environment, or, for a blue-green step, out of its colour's group (a host
 * moved to the live colour would get the new version under traffic).
 */
function takenOutSincePlan(deployment: Deployment, environment: Environment): string[] {
  const lowered = (ids: string[]) => new Set(ids.map((ci) => ci.toLowerCase()));
  const everywhere = lowered(allTargets(environment));
  const moved = deploySteps(deployment.steps).flatMap((step) => {
    const where = step.colour ? lowered(groupTargets(environment, step.colour)) : everywhere;
    return step.targetCiIds.filter((ci) => !where.has(ci.toLowerCase()));
  });
  return [...new Set(moved)];
}

/** The environment's protection now, when it is not the one the deployment was planned under. */
function protectionChangedSincePlan(deployment: Deployment, environment: Environment) {
  const planned = { approvalGroup: deployment.approvalGroup, quorum: deployment.requiredApprovals };
  const now = {
    approvalGroup: environment.protection?.approvalGroup ?? "",
    quorum: environment.protection?.quorum ?? 0,
  };
  const same = planned.quorum === now.quorum && (now.quorum === 0 || planned.approvalGroup === now.approvalGroup);
  return same ? undefined : { planned, now };
}

/** Gathers what the start gates check, from this service's tables and its upstream read models. */
export async function loadGateFacts(
  tx: Queryable,
  deployment: Deployment,
  environment: Environment,
  context: { now: Date; freezeOverrideJustification: string; byChangeManager: boolean },
): Promise<GateFacts> {
  const release = await releaseFacts(tx, deployment.releaseId);
  const changes = await changeFacts(tx, deployment);
  const artifactIds = packageKey(deployment.artifacts);
  const artifacts = await artifactFacts(tx, artifactIds, deployment.artifacts);
  const freezeWindows = await freezeWindowFacts(tx, context.now);
  const previous = environment.promotesFrom;
  const takenOut = takenOutSincePlan(deployment, environment);
  return {
    now: context.now,
    releaseId: deployment.releaseId,
    release,
    changes,
    environment: {
      name: environment.name,
      production: await isProduction(tx, environment.name),
      frozen: environment.frozen,
      freezeReason: environment.freezeReason,
      // Every CI the package goes to and the steps touch; blue/green: both colours, as the switch
      // moves traffic off the live one.
      targetCiIds: [
        ...new Set([
          ...deployment.artifacts.flatMap((artifact) => artifact.targetCiIds),
          ...deployment.steps.flatMap((step) => step.targetCiIds),
          ...(deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN
            ? [...groupTargets(environment, "blue"), ...groupTargets(environment, "green")]
            : []),
        ]),
      ],
      takenOut,
      // One taken out is gate.plan_targets' alone: "take it out" would say what is done.
      retired: (await retiredTargets(tx, deployment)).filter((ci) => !takenOut.includes(ci)),
      protectionChanged: protectionChangedSincePlan(deployment, environment),
    },
    freezeWindows,
    previousEnvironment:
      previous === ""
        ? undefined
        : {
            name: previous,
            packageSucceeded: await packageSucceededIn(tx, deployment.releaseId, previous, artifactIds),
          },
    artifacts,
    freezeOverride: { justification: context.freezeOverrideJustification, byChangeManager: context.byChangeManager },
    runningDeploymentId: await runningDeployment(tx, environment.name, deployment.deploymentId),
  };
}

/** The targets the plan's deploy steps reach that the CMDB retired, as the configuration topic told. */
async function retiredTargets(tx: Queryable, deployment: Deployment): Promise<string[]> {
  const targets = deployTargets(deployment.steps);
  const { rows } = await tx.query<{ ci_id: string }>(
    "SELECT ci_id FROM gate_configuration_items WHERE retired AND ci_id = ANY($1)",
    [targets.map((ci) => ci.toLowerCase())],
  );
  const retired = new Set(rows.map((row) => row.ci_id));
  return targets.filter((ci) => retired.has(ci.toLowerCase()));
}

/** The release's phase, approval and abandonment, as the release topic told; undefined if not heard of yet. */
async function releaseFacts(tx: Queryable, releaseId: string): Promise<GateFacts["release"]> {
  const { rows } = await tx.query<{ phase: number; approved: boolean; abandoned: boolean; package: string[] | null }>(
    "SELECT phase, approved, abandoned, package FROM gate_releases WHERE release_id = $1",
    [releaseId],
  );
  const release = rows[0];
  return (
    release && {
      phase: release.phase,
      approved: release.approved,
      abandoned: release.abandoned,
      package: release.package ?? undefined,
    }
  );
}

/**
 * Whether the release topic said the release was abandoned, its row share-locked until the plan
 * commits: the abandonment's consumer (which writes that row, then cancels the release's
 * deployments not begun) either came first, or waits and then finds the plan.
 */
export async function releaseAbandoned(tx: Queryable, releaseId: string): Promise<boolean> {
  const { rows } = await tx.query<{ abandoned: boolean }>(
    "SELECT abandoned FROM gate_releases WHERE release_id = $1 FOR SHARE",
    [releaseId],
  );
  return rows[0]?.abandoned ?? false;
}

/** One entry per change to check, known or not, so an unheard-of change blocks the start. */
async function changeFacts(tx: Queryable, deployment: Deployment): Promise<GateFacts["changes"]> {
  // The plan's changes and every change linked to the release (as the release topic tells).
  const linked = await tx.query<{ change_id: string }>(
    "SELECT change_id FROM gate_release_changes WHERE release_id = $1",
    [deployment.releaseId],
  );
  const planned = new Set(deployment.linkedChangeIds.map((id) => id.toLowerCase()));
  const listed = new Set(linked.rows.map((r) => r.change_id));
  const changeIds = [...new Set([...planned, ...listed])];
  const changes = await tx.query<{
    change_id: string;
    emergency: boolean;
    authorized: boolean;
    cancelled: boolean;
    ended: string;
    window_start: Date | null;
    window_end: Date | null;
    environments: string[] | null;
  }>("SELECT * FROM gate_changes WHERE change_id = ANY($1)", [changeIds]);
  return changeIds.map((changeId) => {
    const row = changes.rows.find((change) => change.change_id === changeId);
    return {
      changeId,
      known: row !== undefined,
      authorized: row?.authorized ?? false,
      cancelled: row?.cancelled ?? false,
      ended: row?.ended || undefined,
      planned: planned.has(changeId),
      outsideRelease: !listed.has(changeId),
      emergency: row?.emergency ?? false,
      window: row?.window_start && row.window_end ? { start: row.window_start, end: row.window_end } : undefined,
      environments: row?.environments ?? undefined,
    };
  });
}

/** One entry per artifact of the package, known or not, so an unheard-of artifact blocks the start. */
async function artifactFacts(
  tx: Queryable,
  artifactIds: string[],
  plannedArtifacts: DeployedArtifact[],
): Promise<GateFacts["artifacts"]> {
  const artifacts = await tx.query<{
    artifact_id: string;
    verified: boolean;
    quarantined: boolean;
    name: string | null;
    version: string | null;
  }>("SELECT * FROM gate_artifacts WHERE artifact_id = ANY($1)", [artifactIds]);
  return artifactIds.map((artifactId) => {
    const row = artifacts.rows.find((artifact) => artifact.artifact_id === artifactId);
    const planned = plannedArtifacts.find((artifact) => artifact.artifactId === artifactId);
    return {
      artifactId,
      known: row !== undefined,
      verified: row?.verified ?? false,
      quarantined: row?.quarantined ?? false,
      planned: { name: planned?.name ?? "", version: planned?.version ?? "" },
      // Rows from before the DML's name and version were kept have none: nothing to compare.
      registered: row?.name != null && row.version != null ? { name: row.name, version: row.version } : undefined,
    };
  });
}

/** Freeze windows still in force or ahead: the gate decides which of them cover this start. */
async function freezeWindowFacts(tx: Queryable, now: Date): Promise<GateFacts["freezeWindows"]> {
  const { rows } = await tx.query<{
    freeze_window_id: string;
    name: string;
    reason: string;
    window_start: Date;
    window_end: Date;
    scope_all: boolean;
    ci_ids: string[];
    environments: string[];
  }>(
    `SELECT * FROM gate_freeze_windows
     WHERE NOT lifted AND window_start IS NOT NULL AND window_end IS NOT NULL AND window_end > $1`,
    [now],
  );
  return rows.map((row) => ({
    freezeWindowId: row.freeze_window_id,
    name: row.name,
    reason: row.reason,
    start: row.window_start,
    end: row.window_end,
    scope: { all: row.scope_all, ciIds: row.ci_ids, environments: row.environments },
  }));
}
