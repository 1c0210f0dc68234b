import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Outcome } from "@rdm/command-handler";
import type { Deployment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeploymentRollbackAbandoned,
  DeploymentStrategyKind,
  type DeploymentSucceeded,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import {
  type BaselineChange,
  baselineChanged,
  baselineLeftBy,
  type DeploymentAggregateState,
  type DeploymentEvent,
  liveColourAfter,
} from "../domain/index.js";
import { syncStepQueue } from "../store/step-queue.js";
import {
  type Baseline,
  executorLabelsOf,
  nextEnvironmentSequence,
  productionEnvironments,
  recordBaseline,
  recordLiveColour,
  saveDeployment,
  storedBaseline,
} from "../store/tables.js";

const OUTCOMES = new Set([
  "rdm.deployment.v1.DeploymentStarted",
  "rdm.deployment.v1.DeploymentSucceeded",
  "rdm.deployment.v1.DeploymentFailed",
  "rdm.deployment.v1.DeploymentRolledBack",
]);

export type OutcomeEvent = Exclude<
  Extract<DeploymentEvent, { environmentSequence: bigint }>,
  DeploymentRollbackAbandoned
>;
export const isOutcome = (event: DeploymentEvent): event is OutcomeEvent => OUTCOMES.has(event.$typeName);

/** A rollback given up: numbered among the environment's outcomes, as it may move the live colour. */
export const isAbandonment = (event: DeploymentEvent): event is DeploymentRollbackAbandoned =>
  event.$typeName === "rdm.deployment.v1.DeploymentRollbackAbandoned";

/** The colours blue-green rollbacks given up among `events` left serving traffic, by sequence. */
export const abandonedColours = (events: DeploymentEvent[]) =>
  events
    .filter(isAbandonment)
    .filter((event) => event.liveColour !== "")
    .map((event) => ({ liveColour: event.liveColour, sequence: event.environmentSequence }));

/**
 * Gives each outcome event its environment's next sequence, in the transaction that appends it:
 * the per-environment row stays locked until the commit, so one environment's outcomes are
 * numbered in commit order, whatever deployment or partition they travel on. Each also says
 * whether the environment is production as this service knows it now, so consumers need not
 * learn it from environment events that may reach them later; a success also which environments
 * are (a change naming several production ones awaits each).
 */
export async function withEnvironmentSequences(tx: pg.PoolClient, events: DeploymentEvent[]) {
  const outcomes = events.filter(isOutcome);
  if (outcomes.length === 0 && !events.some(isAbandonment)) return events;
  // The environments' definitions, read once for the command's outcomes.
  const production = await productionEnvironments(tx);
  // In the order appended: a failure recorded as a rollback is given up comes before it.
  for (const event of events) {
    if (isAbandonment(event)) event.environmentSequence = await nextEnvironmentSequence(tx, event.environment);
    if (!isOutcome(event)) continue;
    event.environmentSequence = await nextEnvironmentSequence(tx, event.environment);
    event.production = production.isProduction(event.environment);
    if (event.$typeName === DeploymentSucceededSchema.typeName)
      event.productionEnvironments = event.production
        ? [...new Set([...production.names, event.environment])].sort()
        : production.names;
  }
  return events;
}

/** The query row, the step queue and, on an outcome, the environment's baseline. */
export async function projectDeployment(
  tx: pg.PoolClient,
  outcome: Outcome<DeploymentAggregateState, DeploymentEvent>,
) {
  const deployment = outcome.after.deployment;
  if (!deployment) return;
  await saveDeployment(tx, deployment);
  await syncStepQueue(
    tx,
    deployment,
    outcome.before.deployment,
    await executorLabelsOf(tx, deployment.environment),
    toldSteps(outcome.events),
  );
  // The outcome's sequence was taken in this transaction: the baseline read is the newest.
  let current = await storedBaseline(tx, deployment.environment);
  for (const { change, ...rest } of baselinesOf(deployment, outcome.events)) {
    current = baselineChanged(current, change);
    await recordBaseline(tx, deployment.environment, { ...rest, artifacts: current });
  }
  for (const colour of abandonedColours(outcome.events)) await recordLiveColour(tx, deployment.environment, colour);
}

/** Events only a step's holder's own calls append: the steps they name were ended in its hearing. */
const HOLDER_EVENTS = new Set([
  "rdm.deployment.v1.DeploymentTargetProgressed",
  "rdm.deployment.v1.DeploymentStepCompleted",
  "rdm.deployment.v1.DeploymentStepFailed",
  "rdm.deployment.v1.DeploymentStepReleased",
]);

const toldSteps = (events: DeploymentEvent[]) =>
  new Set(
    events.flatMap((event) => (HOLDER_EVENTS.has(event.$typeName) && "stepIndex" in event ? [event.stepIndex] : [])),
  );

const SUCCEEDED = "rdm.deployment.v1.DeploymentSucceeded";
const ROLLED_BACK = "rdm.deployment.v1.DeploymentRolledBack";
type BaselineEvent = Extract<OutcomeEvent, { $typeName: typeof SUCCEEDED | typeof ROLLED_BACK }>;
const setsBaseline = (event: DeploymentEvent): event is BaselineEvent =>
  event.$typeName === SUCCEEDED || event.$typeName === ROLLED_BACK;

/**
 * A success places its package over what runs. One scheduled before starts recorded their names
 * (its baseline is the whole one it started from) leaves what it left then: that, as before.
 */
const successChange = (deployment: Deployment, succeeded: DeploymentSucceeded): BaselineChange =>
  deployment.baselineArtifactNames.length
    ? { placed: succeeded.artifacts }
    : { restored: { artifacts: baselineLeftBy(deployment), restoredArtifactNames: [], restoredTargetCiIds: [] } };

/** A success or rollback: what it does to the environment's baseline, and the rest it records with it. */
export type BaselineOutcome = Omit<Baseline, "artifacts"> & { change: BaselineChange };

/**
 * What each of the successes and rollbacks among the deployment's `events` does to the
 * environment's baseline: a success places its package (blue-green: on the colour it reached);
 * a rollback restores what ran under its artifact names when it started. The colour comes from
 * the deployment after them (its switch, the colour before it), which no later event changes:
 * rebuild-tables passes the final state.
 */
export function baselinesOf(deployment: Deployment, events: DeploymentEvent[]): BaselineOutcome[] {
  const blueGreen = deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN;
  return events.filter(setsBaseline).map((event) => {
    const at = event.metadata?.occurredAt;
    const succeeded = event.$typeName === SUCCEEDED;
    return {
      sequence: event.environmentSequence,
      change: event.$typeName === SUCCEEDED ? successChange(deployment, event) : { restored: event },
      deploymentId: deployment.deploymentId,
      since: at && timestampDate(at),
      liveColour: blueGreen ? liveColourAfter(deployment, succeeded ? "succeeded" : "rolledBack") : undefined,
    };
  });
}
