import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import { gateConditions, type LinkedChangeState } from "@rdm/domain-kernel/release";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  DeploymentOutcome,
  LogEntryKind,
  type Release,
  type ReleaseDeployment,
  ReleaseDeploymentSchema,
  ReleasePhase,
  ReleaseStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { dueAt, nextPhase, phaseDefinition, requireRelease, templateTasks, ts } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

const outcomeText: Record<DeploymentOutcome, string> = {
  [DeploymentOutcome.UNSPECIFIED]: "ended",
  [DeploymentOutcome.SUCCEEDED]: "succeeded",
  [DeploymentOutcome.FAILED]: "failed",
  [DeploymentOutcome.ROLLED_BACK]: "was rolled back",
};

/**
 * Whether a success deployed the release's package as it is now: the same artifacts (a
 * deployment started before a rework deployed the package as it was). A release without a
 * package, or a report without artifacts, is not compared.
 */
function deployedThePackage(releasePackage: { artifactId: string }[], deployed: string[] | undefined): boolean {
  if (!releasePackage.length || !deployed?.length) return true;
  const ids = new Set(deployed);
  return ids.size === releasePackage.length && releasePackage.every((a) => ids.has(a.artifactId));
}

/**
 * The production deployment is the evidence of the phase's work, so its required tasks are not
 * asked again; everything else its gate asks (approvals, linked changes) still is.
 */
const gateButTasksMet = (state: ReleaseState, changes: LinkedChangeState[]) =>
  gateConditions(state, changes).every((c) => c.met || c.rule === "gate.required_task_done");

/**
 * A deployment outcome the deployment service reported. Each outcome of a deployment is
 * recorded once, so a redelivered or replayed event decides nothing. A success in production
 * of the release's current package ends the deployment phase when the rest of its gate is met
 * (approvals, linked changes) and no open linked change names another production environment
 * the package has not succeeded in (prod-eu and prod-us: the last of them ends it): the release
 * moves on to the phase its model names next (VERIFICATION in the standard model); the
 * production deployment is the evidence of that phase's tasks, so they are not asked again. A
 * failure or a rollback is a deviation from the plan, kept in the release's log for the
 * post-implementation review; the release stays where it is.
 */
export function recordDeploymentOutcome(
  command: ReleaseCommandOf<"recordDeploymentOutcome">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const { release } = requireRelease(state);
  const { deploymentId, outcome } = command.deployment;
  if (release.deployments.some((d) => d.deploymentId === deploymentId && d.outcome === outcome)) return [];
  const releaseId = release.releaseId;
  const deployment = create(ReleaseDeploymentSchema, {
    ...command.deployment,
    occurredAt: ts(command.deployment.occurredAt ?? ctx.now),
    phase: release.phase,
    phaseEntry: release.phaseEntry,
  });
  if (outcome !== DeploymentOutcome.SUCCEEDED) {
    const where = deployment.production ? `${deployment.environment} (production)` : deployment.environment;
    return [
      create(ev.ReleaseDeviationRecordedSchema, {
        releaseId,
        deployment,
        entry: {
          entryId: ctx.newId(),
          kind: LogEntryKind.DEVIATION,
          text: `deployment ${deploymentId} to ${where} ${outcomeText[outcome]}${deployment.reason ? `: ${deployment.reason}` : ""}`,
          recordedBy: ctx.actor,
          recordedAt: ts(ctx.now),
        },
      }),
    ];
  }
  const recorded = create(ev.ReleaseDeploymentRecordedSchema, { releaseId, deployment });
  const movesOn =
    deployment.production && deployedThePackage(release.package, command.deployment.artifactIds)
      ? afterProduction(state, command.deployment.changes ?? [], ctx, deployment.environment)
      : [];
  return [recorded, ...movesOn];
}

/** Changes a deployment may still implement: authorized, scheduled or under way. */
const OPEN_CHANGE_STATES = new Set(["AUTHORIZED", "SCHEDULED", "IMPLEMENTING"]);

/**
 * The production environments an open linked change names where the release's package has not
 * succeeded in this stay in DEPLOYMENT (`succeeded`: one that just did): a change for prod-eu and
 * prod-us keeps the release deploying after prod-eu, so prod-us may still start.
 */
function productionAwaited(state: ReleaseState, changes: LinkedChangeState[], succeeded?: string): string[] {
  const { release } = requireRelease(state);
  const done = new Set([
    ...release.deployments.filter((d) => succeededInThisStay(release, d)).map((d) => d.environment),
    ...(succeeded ? [succeeded] : []),
  ]);
  const named = changes
    .filter((change) => change.state !== undefined && OPEN_CHANGE_STATES.has(change.state))
    .flatMap((change) => change.productionEnvironments ?? []);
  return [...new Set(named)].filter((environment) => !done.has(environment));
}

/**
 * The environments the newest production success of this stay said were production (its word, as
 * the hold at that success read it): what a later re-check of the hold takes as production.
 */
export const productionOfThisStay = (release: Release): string[] =>
  release.deployments.filter((d) => succeededInThisStay(release, d)).at(-1)?.productionEnvironments ?? [];

/** A success in production of this stay in DEPLOYMENT (not one before a rework sent the release back), of the package as it is now. */
const succeededInThisStay = (release: Release, d: ReleaseDeployment) =>
  d.outcome === DeploymentOutcome.SUCCEEDED &&
  d.production &&
  d.phase === ReleasePhase.DEPLOYMENT &&
  d.phaseEntry === release.phaseEntry &&
  deployedThePackage(release.package, d.artifactIds);

/**
 * The phase the model names after DEPLOYMENT, entered (with its tasks) once the release's package
 * succeeded in production (`succeeded`: where it just did), if the release is still in DEPLOYMENT,
 * the rest of its gate holds with `changes` and no open change awaits another production
 * environment; nothing otherwise.
 */
function afterProduction(
  state: ReleaseState,
  changes: LinkedChangeState[],
  ctx: DecisionContext,
  succeeded?: string,
): ReleaseEvent[] {
  const { release, model } = requireRelease(state);
  const to = nextPhase(model, ReleasePhase.DEPLOYMENT);
  const moves =
    release.status === ReleaseStatus.ACTIVE &&
    release.phase === ReleasePhase.DEPLOYMENT &&
    to !== undefined &&
    to !== ReleasePhase.CLOSED &&
    gateButTasksMet(state, changes) &&
    productionAwaited(state, changes, succeeded).length === 0;
  if (!moves) return [];
  const entry = release.phaseEntry + 1;
  const due = dueAt(phaseDefinition(model, to), ctx.now);
  return [
    create(ev.ReleasePhaseAdvancedSchema, {
      releaseId: release.releaseId,
      fromPhase: release.phase,
      toPhase: to,
      phaseEntry: entry,
      ...(due ? { phaseDueAt: due } : {}),
    }),
    ...templateTasks(release.releaseId, model, to, entry, ctx),
  ];
}

/**
 * The linked changes' states moved (e.g. a change IMPLEMENTED by the production deployment, told
 * after it): a release whose package already succeeded in production moves on now if the rest of
 * its gate holds, as it would have at the success.
 */
export function moveOnAfterProduction(
  command: ReleaseCommandOf<"moveOnAfterProduction">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const { release } = requireRelease(state);
  const succeeded = release.deployments.some((d) => succeededInThisStay(release, d));
  return succeeded ? afterProduction(state, command.changes, ctx) : [];
}
