import type { Outcome } from "@rdm/command-handler";
import { DeploymentStrategyKind, StepKind, StepState } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import type { DeploymentAggregateState, DeploymentEvent } from "../domain/index.js";
import { syncStepQueue } from "../store/step-queue.js";
import {
  findEnvironment,
  isProduction,
  nextEnvironmentSequence,
  recordBaseline,
  saveDeployment,
} from "../store/tables.js";

const OUTCOMES = new Set([
  "rdm.deployment.v1.DeploymentStarted",
  "rdm.deployment.v1.DeploymentSucceeded",
  "rdm.deployment.v1.DeploymentFailed",
  "rdm.deployment.v1.DeploymentRolledBack",
]);

type OutcomeEvent = Extract<DeploymentEvent, { environmentSequence: bigint }>;
const isOutcome = (event: DeploymentEvent): event is OutcomeEvent => OUTCOMES.has(event.$typeName);

/**
 * Gives each outcome event its environment's next sequence, in the transaction that appends it:
 * the per-environment row stays locked until the commit, so one environment's outcomes are
 * numbered in commit order, whatever deployment or partition they travel on. Each also says
 * whether the environment is production as this service knows it now, so consumers need not
 * learn it from environment events that may reach them later.
 */
export async function withEnvironmentSequences(tx: pg.PoolClient, events: DeploymentEvent[]) {
  for (const event of events) {
    if (!isOutcome(event)) continue;
    event.environmentSequence = await nextEnvironmentSequence(tx, event.environment);
    event.production = await isProduction(tx, event.environment);
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
  const environment = await findEnvironment(tx, deployment.environment);
  await syncStepQueue(tx, deployment, outcome.before.deployment, environment?.executorLabels ?? []);
  const blueGreen = deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN;
  const since = outcome.events.at(-1)?.metadata?.occurredAt;
  for (const event of outcome.events) {
    const at = since ? new Date(Number(since.seconds) * 1000) : new Date();
    if (event.$typeName === "rdm.deployment.v1.DeploymentSucceeded") {
      const switched = deployment.steps.find(
        (step) => step.kind === StepKind.SWITCH && step.state === StepState.COMPLETED,
      );
      await recordBaseline(tx, deployment.environment, {
        artifacts: event.artifacts,
        deploymentId: deployment.deploymentId,
        since: at,
        liveColour: blueGreen ? switched?.colour : undefined,
      });
    }
    if (event.$typeName === "rdm.deployment.v1.DeploymentRolledBack") {
      await recordBaseline(tx, deployment.environment, {
        artifacts: event.artifacts,
        deploymentId: deployment.deploymentId,
        since: at,
        liveColour: blueGreen ? deployment.previousColour : undefined,
      });
    }
  }
}
