import { type Aggregate, type DomainEvent, entityRows, type QueryTables, streamRows } from "@rdm/command-handler";
import { deploymentCodec, deployments, environments } from "../api/aggregates.js";
import { isOutcome, type OutcomeEvent, recordBaselines } from "../api/projection.js";
import { type DeploymentAggregateState, type DeploymentEvent, fold } from "../domain/index.js";
import { restoreEnvironmentSequence, saveDeployment, saveEnvironment } from "./tables.js";

/** A deployment and the outcome events of its stream, which environment_outcomes is made of. */
interface DeploymentWithOutcomes {
  state: DeploymentAggregateState;
  outcomes: OutcomeEvent[];
}

const withOutcomes = (events: DeploymentEvent[], { state, outcomes }: DeploymentWithOutcomes) => ({
  state: fold(events, state),
  outcomes: [...outcomes, ...events.filter(isOutcome)],
});

const deploymentsWithOutcomes: Aggregate<DeploymentWithOutcomes, DeploymentEvent> = {
  initialState: () => ({ state: deployments.initialState(), outcomes: [] }),
  evolve: (rows, event) => withOutcomes([event], rows),
  fold: withOutcomes,
};

/**
 * The deployment service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes
 * them again: `environments` and `deployments` from their streams' final states (a deployment's
 * created_at is its plan's time), and `environment_outcomes` from the deployments' outcome events:
 * the last sequence handed out is the highest they carry (a command waiting on the lock takes the
 * next), the baseline and live colour are the latest success's or rollback's by sequence.
 * Not rebuilt: `step_queue` is the executors' work state (heartbeats extend its leases without an
 * event, so a rebuild would shorten live ones and let another executor take a running step), and
 * the `gate_*` tables hold other services' facts, read from their topics.
 * The tables are locked in the commands' order: an outcome holds environment_outcomes from its
 * decision on and writes deployments after.
 */
export const deploymentQueryTables: QueryTables<DomainEvent> = {
  tables: ["environments", "environment_outcomes", "deployments"],
  codec: deploymentCodec,
  streams: {
    environment: entityRows(environments, (s) => s.environment, saveEnvironment),
    deployment: streamRows(deploymentsWithOutcomes, async (client, { state: { deployment }, outcomes }) => {
      if (!deployment) return false;
      await saveDeployment(client, deployment);
      for (const outcome of outcomes)
        await restoreEnvironmentSequence(client, outcome.environment, outcome.environmentSequence);
      await recordBaselines(client, deployment, outcomes);
      return true;
    }),
  },
};
