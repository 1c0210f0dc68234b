import { create } from "@bufbuild/protobuf";
import { DEFAULT_MAX_EVENT_BYTES } from "@rdm/command-handler";
import { replacedByRollback } from "@rdm/domain-kernel/configuration";
import type { Deployment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeployedArtifactSchema,
  type DeploymentRolledBack,
  type DeploymentStep,
  DeploymentStrategyKind,
  StepKind,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type { RuleDetail } from "./rule-violation.js";

/**
 * The package on the targets the plan's deploy steps reach: every target of the environment,
 * except for BLUE_GREEN, whose steps reach only the idle colour (the live one keeps what it ran).
 */
export function placedBy(artifacts: DeployedArtifact[], steps: DeploymentStep[]): DeployedArtifact[] {
  const targetCiIds = deployTargets(steps);
  return artifacts.map((artifact) => create(DeployedArtifactSchema, { ...artifact, targetCiIds }));
}

/**
 * The targets whose deploy failed (their last report in a deploy step): within max_failed_targets
 * when the deployment went on. A verification after it passing says the target still works, not
 * that the package reached it.
 */
export const failedTargetsOf = (deployment: Deployment): string[] => [...deployment.deployFailedCiIds];

/**
 * What a success leaves running: the package on every target it reached but those that failed
 * (tolerated by max_failed_targets), which are taken to run what they ran before.
 */
export function placedOnSuccess(deployment: Deployment): DeployedArtifact[] {
  const failed = new Set(failedTargetsOf(deployment));
  if (failed.size === 0) return deployment.artifacts;
  return onTargets(deployment.artifacts, (ci) => !failed.has(ci));
}

/** Each artifact on those of its targets `keep` keeps (an artifact left with none stays listed). */
const onTargets = (artifacts: DeployedArtifact[], keep: (ci: string) => boolean) =>
  artifacts.map((artifact) =>
    create(DeployedArtifactSchema, { ...artifact, targetCiIds: artifact.targetCiIds.filter(keep) }),
  );

/** The plan's deploy steps (not its rollback's). */
export const deploySteps = (steps: DeploymentStep[]): DeploymentStep[] =>
  steps.filter((step) => step.kind === StepKind.DEPLOY && !step.rollback);

/** The targets of the plan's deploy steps an executor took up (claimed), once each: what a failure may have changed. */
export const touchedTargets = (steps: DeploymentStep[]): string[] => [
  ...new Set(
    deploySteps(steps)
      .filter((step) => step.fencingToken > 0n)
      .flatMap((step) => step.targetCiIds),
  ),
];

/**
 * What a failure may have left running: the package on the targets its deploy steps took up.
 * The others were never deployed to and run what they ran.
 */
export function placedOnFailure(deployment: Deployment): DeployedArtifact[] {
  const touched = new Set(touchedTargets(deployment.steps));
  return onTargets(deployment.artifacts, (ci) => touched.has(ci));
}

/** The targets the plan's deploy steps reach, once each: what a rollback restores. */
export const deployTargets = (steps: DeploymentStep[]): string[] => [
  ...new Set(deploySteps(steps).flatMap((step) => step.targetCiIds)),
];

const sameArtifact = (a: DeployedArtifact, b: DeployedArtifact) =>
  a.artifactId === b.artifactId && a.name === b.name && a.version === b.version;

/**
 * What the environment runs once `placed` succeeded over `baseline`: a target the deployment
 * reached runs the placed version of each artifact it got, and keeps the other artifacts it ran
 * (deploying api does not uninstall worker: the CMDB's and the gateway's baselines say the same,
 * one entry per target and artifact name). An artifact on both sides is listed once, with the
 * targets of both.
 */
export function baselineAfter(baseline: DeployedArtifact[], placed: DeployedArtifact[]): DeployedArtifact[] {
  const slot = (ci: string, artifact: DeployedArtifact) => `${ci}\u0000${artifact.name}`;
  const replaced = new Set(placed.flatMap((artifact) => artifact.targetCiIds.map((ci) => slot(ci, artifact))));
  const kept = baseline
    .map((artifact) => ({
      ...artifact,
      targetCiIds: artifact.targetCiIds.filter((ci) => !replaced.has(slot(ci, artifact))),
    }))
    .filter((artifact) => artifact.targetCiIds.length > 0);
  const merged: DeployedArtifact[] = [];
  for (const artifact of [...kept, ...placed]) {
    const same = merged.find((other) => sameArtifact(other, artifact));
    if (same) same.targetCiIds = [...new Set([...same.targetCiIds, ...artifact.targetCiIds])];
    else merged.push(create(DeployedArtifactSchema, { ...artifact, targetCiIds: [...artifact.targetCiIds] }));
  }
  return merged;
}

/**
 * BLUE_GREEN: the colour serving traffic once the deployment has succeeded (the one it switched
 * to) or been rolled back (the one it switched back to; else the one it switched to, when no
 * colour was live before; else the one live before it); "" for other strategies. Success and
 * rollback are decided as their last step completes, so a switch among the steps counts whether
 * or not it is recorded as completed yet (a switch back is the rollback's first step).
 */
export function liveColourAfter(deployment: Deployment, outcome: "succeeded" | "rolledBack"): string {
  if (!isBlueGreen(deployment)) return "";
  const switchOf = (rollback: boolean) =>
    deployment.steps.find((step) => step.kind === StepKind.SWITCH && step.rollback === rollback)?.colour;
  if (outcome === "succeeded") return switchOf(false) ?? "";
  return switchOf(true) ?? (deployment.switched ? (switchOf(false) ?? "") : deployment.previousColour);
}

const isBlueGreen = (deployment: Deployment) => deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN;

/**
 * What the deployment left of its artifact names' baseline when it succeeded: its package over
 * `baseline`, what ran under those names when it started on the targets it has (nothing else
 * runs in the environment meanwhile). The package reached every target but those that failed
 * (placedOnSuccess, as its success recorded it), a blue-green one only the idle colour: the live colour keeps what it ran. A
 * deployment scheduled before baselines were scoped holds the whole baseline, and so this is the whole.
 */
export const baselineLeftBy = (deployment: Deployment): DeployedArtifact[] =>
  baselineAfter(
    deployment.baseline,
    // As its DeploymentSucceeded said (one recorded before tolerated failures were left out names them).
    deployment.succeededArtifacts.length ? deployment.succeededArtifacts : placedOnSuccess(deployment),
  );

/** The package's artifact names, in plan order, once each: what a start scopes its baseline to. */
export const packageNames = (artifacts: DeployedArtifact[]): string[] => [...new Set(artifacts.map((a) => a.name))];

/** The entries of `baseline` under `names`; all of it when `names` is empty (a deployment from before scoping). */
export function scopedTo(baseline: DeployedArtifact[], names: string[]): DeployedArtifact[] {
  if (names.length === 0) return baseline;
  const scope = new Set(names);
  return baseline.filter((artifact) => scope.has(artifact.name));
}

/**
 * A rollback's restore, as DeploymentRolledBack says it: `artifacts`, what runs where it replaced
 * entries (replacedByRollback); no names: recorded before scoping, `artifacts` is the whole baseline.
 */
export type Restore = Pick<DeploymentRolledBack, "artifacts" | "restoredArtifactNames" | "restoredTargetCiIds">;

/**
 * What the environment runs after `restore`: the entries it replaced are what it lists (one it
 * does not list was removed); other names, and other targets, keep theirs.
 */
export function baselineRestored(current: DeployedArtifact[], restore: Restore): DeployedArtifact[] {
  if (restore.restoredArtifactNames.length === 0) return restore.artifacts;
  const replaced = replacedByRollback(restore);
  const kept = current.flatMap((artifact) => {
    const targetCiIds = artifact.targetCiIds.filter((ci) => !replaced(artifact.name, ci));
    if (targetCiIds.length === artifact.targetCiIds.length) return [artifact];
    return targetCiIds.length ? [create(DeployedArtifactSchema, { ...artifact, targetCiIds })] : [];
  });
  return baselineAfter(kept, restore.artifacts);
}

/** What an outcome does to the environment's baseline: a success places its package, a rollback restores. */
export type BaselineChange = { placed: DeployedArtifact[] } | { restored: Restore };

/** The environment's baseline after `change` (outcomes apply in environment_sequence order). */
export const baselineChanged = (current: DeployedArtifact[], change: BaselineChange): DeployedArtifact[] =>
  "placed" in change ? baselineAfter(current, change.placed) : baselineRestored(current, change.restored);

/** The artifacts that go to any of `targetCiIds`, each naming only those. */
export function narrowedTo(artifacts: DeployedArtifact[], targetCiIds: string[]): DeployedArtifact[] {
  const wanted = new Set(targetCiIds);
  return artifacts.flatMap((artifact) => {
    const targets = artifact.targetCiIds.filter((ci) => wanted.has(ci));
    return targets.length ? [create(DeployedArtifactSchema, { ...artifact, targetCiIds: targets })] : [];
  });
}

/**
 * The artifacts a step's executor gets: those its targets get, each naming only them (a baseline
 * can differ by target); a switch routes traffic to a colour, so it gets them all.
 */
export const forStep = (artifacts: DeployedArtifact[], step: Pick<DeploymentStep, "kind" | "targetCiIds">) =>
  step.kind === StepKind.SWITCH ? artifacts : narrowedTo(artifacts, step.targetCiIds);

/** Room left in an event for the metadata the command handler adds to it. */
const METADATA_ROOM_BYTES = 16 * 1024;

/**
 * A start records the baseline of its package's artifact names (what a back-out restores) in one
 * event (`encodedBytes`, before its metadata), which must fit one Kafka message: a start whose
 * baseline does not (its artifacts on thousands of targets) is refused with this condition,
 * naming its size, rather than with the event size limit's advice to send less.
 */
export function baselineTooLarge(
  environment: string,
  baseline: DeployedArtifact[],
  encodedBytes: number,
): RuleDetail | undefined {
  if (encodedBytes <= DEFAULT_MAX_EVENT_BYTES - METADATA_ROOM_BYTES) return undefined;
  const pairs = baseline.reduce((sum, artifact) => sum + artifact.targetCiIds.length, 0);
  return {
    rule: "deployment.baseline_too_large",
    subject: environment,
    description:
      `the package's artifacts run on ${pairs} artifact-target pairs in ${environment} (${encodedBytes} bytes), more than ` +
      `a deployment can record as what a back-out restores (an event must fit one Kafka message): split the targets ` +
      `into smaller environments, or the package into smaller ones`,
  };
}
