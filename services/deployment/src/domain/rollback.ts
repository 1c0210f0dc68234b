import { create } from "@bufbuild/protobuf";
import { type Deployment, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeploymentFailedSchema,
  DeploymentRollbackAbandonedSchema,
  DeploymentRollbackStartedSchema,
  DeploymentRolledBackSchema,
  DeploymentStrategyKind,
  StepKind,
  StepState,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  baselineLeftBy,
  deployTargets,
  failedTargetsOf,
  liveColourAfter,
  narrowedTo,
  placedOnFailure,
  scopedTo,
} from "./baseline.js";
import { refuse } from "./rule-violation.js";
import { rollbackSteps } from "./strategy.js";

/** What a rollback needs to know of the environment (RollbackDeployment's command). */
export interface RollbackFacts {
  /**
   * What the environment runs now on its targets (`targetCiIds`): the deployment that set its
   * baseline, and those artifacts.
   */
  environmentBaseline: { deploymentId: string; artifacts: DeployedArtifact[]; targetCiIds: string[] };
  /** Another deployment running in the environment, if any. */
  runningDeploymentId: string | undefined;
}

/** Starts backing out to the baseline; with nothing to undo the deployment is rolled back at once. */
export function startRollback(deployment: Deployment, reason: string, automatic: boolean, fast: boolean) {
  const steps = rollbackSteps(
    {
      steps: deployment.steps,
      previousColour: deployment.previousColour,
      switched: deployment.switched,
      blueGreen: deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN,
    },
    fast,
  );
  const started = create(DeploymentRollbackStartedSchema, {
    deploymentId: deployment.deploymentId,
    reason,
    automatic,
    fast,
    artifacts: deployment.baseline,
    restoredArtifactNames: deployment.baselineArtifactNames,
    steps,
  });
  return steps.length ? [started] : [started, rolledBack(deployment, reason)];
}

export const rolledBack = (deployment: Deployment, reason: string) =>
  create(DeploymentRolledBackSchema, {
    deploymentId: deployment.deploymentId,
    releaseId: deployment.releaseId,
    environment: deployment.environment,
    artifacts: deployment.baseline,
    restoredArtifactNames: deployment.baselineArtifactNames,
    restoredTargetCiIds: deployTargets(deployment.steps),
    reason,
    liveColour: liveColourAfter(deployment, "rolledBack"),
  });

/** The targets of the rollback's restore steps not completed: what it leaves as the failure left them. */
const unrestoredTargets = (deployment: Deployment) => [
  ...new Set(
    deployment.steps
      .filter((s) => s.rollback && s.kind === StepKind.ROLLBACK && s.state !== StepState.COMPLETED)
      .flatMap((s) => s.targetCiIds),
  ),
];

/**
 * The rollback given up: the targets of its restore steps not completed are left as the failure
 * left them. One taken by hand (no failure recorded) records the failure first, an outcome every
 * consumer takes (the environment is degraded, the KPIs count it): the package on those targets
 * only (those restored, and those its deploy never reached, run what they ran before). A
 * blue-green one says which colour serves traffic now (its switch back may have run).
 */
export function abandonRollback(deployment: Deployment, reason: string) {
  const unrestored = unrestoredTargets(deployment);
  const notReached = new Set(failedTargetsOf(deployment));
  const left = unrestored.filter((ci) => !notReached.has(ci));
  return [
    ...(deployment.failureRecorded
      ? []
      : [
          failed(deployment, `rollback given up: ${reason}`, failedTargetsOf(deployment), {
            artifacts: narrowedTo(deployment.artifacts, left),
          }),
        ]),
    create(DeploymentRollbackAbandonedSchema, {
      deploymentId: deployment.deploymentId,
      reason,
      unrestoredTargetCiIds: unrestored,
      liveColour: deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN ? servingColour(deployment) : "",
    }),
  ];
}

/**
 * The colour serving a blue-green deployment's traffic now: the one its switch moved traffic to,
 * unless a switch back completed; the one live before it otherwise. A switch under way (claimed)
 * is taken as done: the executor may still complete it.
 */
function servingColour(deployment: Deployment): string {
  const switchOf = (rollback: boolean) =>
    deployment.steps.find((step) => step.kind === StepKind.SWITCH && step.rollback === rollback);
  const back = switchOf(true);
  const forward = switchOf(false);
  if (back && (back.state === StepState.COMPLETED || back.state === StepState.CLAIMED)) return back.colour;
  if (forward && (forward.state === StepState.COMPLETED || deployment.switched)) return forward.colour;
  return deployment.previousColour;
}

/** The deployment failed: the outcome, then the automatic back-out to the last known good baseline. */
export function failAndRollBack(deployment: Deployment, reason: string, failedTargets: string[]) {
  return [failed(deployment, reason, failedTargets), ...startRollback(deployment, reason, true, false)];
}

/** The failure; `artifacts`: what it leaves running, the package on the targets its deploy steps took up unless given. */
const failed = (
  deployment: Deployment,
  reason: string,
  failedTargets: string[],
  { artifacts = placedOnFailure(deployment) }: { artifacts?: DeployedArtifact[] } = {},
) =>
  create(DeploymentFailedSchema, {
    deploymentId: deployment.deploymentId,
    releaseId: deployment.releaseId,
    environment: deployment.environment,
    artifacts,
    reason,
    failedTargetCiIds: failedTargets,
  });

/**
 * A rollback restores the baseline the deployment found, so the environment must still be as the
 * deployment left it: a succeeded one's artifacts are what runs there under their names (not
 * superseded by a later deployment of them; one of other artifacts since does not matter), and no
 * other deployment is running there meanwhile.
 */
export function requireCurrent(deployment: Deployment, command: RollbackFacts) {
  if (command.runningDeploymentId) {
    refuse(
      "gate.environment_busy",
      `deployment ${command.runningDeploymentId} is running in ${deployment.environment}; roll back when it has finished`,
    );
  }
  if (deployment.state !== DeploymentState.SUCCEEDED) return;
  const { deploymentId, artifacts, targetCiIds } = command.environmentBaseline;
  // Each version on each of the environment's targets, under the deployment's artifact names.
  const placed = (of: DeployedArtifact[]) =>
    new Set(
      narrowedTo(scopedTo(of, deployment.baselineArtifactNames), targetCiIds).flatMap((a) =>
        a.targetCiIds.map((ci) => `${a.artifactId}\u0000${a.name}\u0000${a.version}\u0000${ci}`),
      ),
    );
  const left = placed(baselineLeftBy(deployment));
  const running = placed(artifacts);
  const runsThis =
    deploymentId === deployment.deploymentId || (running.size === left.size && [...running].every((p) => left.has(p)));
  if (!runsThis) {
    refuse(
      "deployment.superseded",
      `${deployment.environment} runs other versions of this deployment's artifacts now: a later deployment replaced them; roll back that one instead`,
    );
  }
}
