import {
  type Aggregate,
  type DomainEvent,
  entityRows,
  type QueryTables,
  streamRowsInBatches,
} from "@rdm/command-handler";
import type { Deployment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { deploymentCodec, deployments, environments } from "../api/aggregates.js";
import { baselinesOf, isOutcome, type OutcomeEvent } from "../api/projection.js";
import { type DeploymentAggregateState, type DeploymentEvent, fold } from "../domain/index.js";
import {
  type Baseline,
  recordBaseline,
  restoreEnvironmentSequences,
  saveDeployments,
  saveEnvironment,
} from "./tables.js";

const max = (a: bigint | undefined, b: bigint) => (a === undefined || b > a ? b : a);

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
    // A thousand deployments a call: their rows in one statement, then per environment the last
    // sequence and the latest baseline and colour among them (the writes keep the highest sequence,
    // whatever order the calls come in).
    deployment: streamRowsInBatches(deploymentsWithOutcomes, async (client, streams) => {
      const found = streams.flatMap(({ state }) => (state.state.deployment ? [state] : []));
      await saveDeployments(
        client,
        found.map(({ state }) => state.deployment as Deployment),
      );
      const sequences = new Map<string, bigint>();
      const latest = new Map<string, { baseline?: Baseline; coloured?: Baseline }>();
      for (const { state, outcomes } of found) {
        const deployment = state.deployment as Deployment;
        for (const { environment, environmentSequence } of outcomes)
          sequences.set(environment, max(sequences.get(environment), environmentSequence));
        const kept = latest.get(deployment.environment) ?? {};
        for (const baseline of baselinesOf(deployment, outcomes)) {
          if (!kept.baseline || baseline.sequence > kept.baseline.sequence) kept.baseline = baseline;
          if (baseline.liveColour !== undefined && (!kept.coloured || baseline.sequence > kept.coloured.sequence))
            kept.coloured = baseline;
        }
        latest.set(deployment.environment, kept);
      }
      await restoreEnvironmentSequences(client, sequences);
      for (const [environment, { baseline, coloured }] of latest) {
        if (baseline) await recordBaseline(client, environment, baseline);
        if (coloured && coloured !== baseline) await recordBaseline(client, environment, coloured);
      }
      return found.length;
    }),
  },
};
