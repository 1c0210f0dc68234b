import { type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  type Aggregate,
  type DomainEvent,
  entityRows,
  type QueryTables,
  streamRowsInBatches,
} from "@rdm/command-handler";
import type { Deployment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeployedArtifactSchema,
  type DeploymentRollbackAbandoned,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import { deploymentCodec, deployments, environments } from "../api/aggregates.js";
import {
  abandonedColours,
  type BaselineOutcome,
  baselinesOf,
  isAbandonment,
  isOutcome,
  type OutcomeEvent,
} from "../api/projection.js";
import { baselineChanged, type DeploymentAggregateState, type DeploymentEvent, fold } from "../domain/index.js";
import {
  artifactsFromJson,
  type Baseline,
  recordBaseline,
  recordLiveColour,
  restoreEnvironmentSequences,
  saveDeployments,
  saveEnvironment,
} from "./tables.js";

const max = (a: bigint | undefined, b: bigint) => (a === undefined || b > a ? b : a);

/** A deployment and the outcome events of its stream, which environment_outcomes is made of. */
interface DeploymentWithOutcomes {
  state: DeploymentAggregateState;
  /** With the rollbacks given up, numbered among them (they may move the live colour). */
  outcomes: (OutcomeEvent | DeploymentRollbackAbandoned)[];
}

const withOutcomes = (events: DeploymentEvent[], { state, outcomes }: DeploymentWithOutcomes) => ({
  state: fold(events, state),
  outcomes: [...outcomes, ...events.filter((event) => isOutcome(event) || isAbandonment(event))],
});

const deploymentsWithOutcomes: Aggregate<DeploymentWithOutcomes, DeploymentEvent> = {
  initialState: () => ({ state: deployments.initialState(), outcomes: [] }),
  evolve: (rows, event) => withOutcomes([event], rows),
  fold: withOutcomes,
};

const artifactsJson = (artifacts: DeployedArtifact[]) => artifacts.map((a) => toJson(DeployedArtifactSchema, a));
const artifactsOf = (json: JsonValue) => artifactsFromJson((json ?? []) as JsonValue[]);

/**
 * A rebuild's successes and rollbacks, kept in its transaction until every deployment is read:
 * an environment's baseline is all of them folded in environment order, and the deployments come
 * in no particular order.
 */
async function keepForFold(client: pg.PoolClient, outcomes: { environment: string; outcome: BaselineOutcome }[]) {
  await client.query(
    `CREATE TEMP TABLE IF NOT EXISTS rebuilt_baseline_outcomes (arrival bigserial, environment text, sequence bigint,
       deployment_id text, since timestamptz, change jsonb) ON COMMIT DROP`,
  );
  if (outcomes.length === 0) return;
  await client.query(
    `INSERT INTO rebuilt_baseline_outcomes (environment, sequence, deployment_id, since, change)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::jsonb[])`,
    [
      outcomes.map(({ environment }) => environment),
      outcomes.map(({ outcome }) => outcome.sequence.toString()),
      outcomes.map(({ outcome }) => outcome.deploymentId),
      outcomes.map(({ outcome }) => outcome.since ?? null),
      outcomes.map(({ outcome: { change } }) =>
        JSON.stringify(
          "placed" in change
            ? { placed: artifactsJson(change.placed) }
            : {
                restored: {
                  artifacts: artifactsJson(change.restored.artifacts),
                  restoredArtifactNames: change.restored.restoredArtifactNames,
                  restoredTargetCiIds: change.restored.restoredTargetCiIds,
                },
              },
        ),
      ),
    ],
  );
}

interface KeptOutcome {
  environment: string;
  sequence: string;
  deployment_id: string;
  since: Date | null;
  change: {
    placed?: JsonValue;
    restored?: { artifacts: JsonValue; restoredArtifactNames: string[]; restoredTargetCiIds: string[] };
  };
}

/** Each environment's baseline: its kept successes and rollbacks folded in environment order. */
async function foldKept(client: pg.PoolClient) {
  await keepForFold(client, []);
  const { rows } = await client.query<KeptOutcome>(
    "SELECT * FROM rebuilt_baseline_outcomes ORDER BY environment, sequence, arrival",
  );
  const folded = new Map<string, Baseline>();
  for (const row of rows) {
    const { change } = row;
    const current = folded.get(row.environment)?.artifacts ?? [];
    folded.set(row.environment, {
      sequence: BigInt(row.sequence),
      artifacts: baselineChanged(
        current,
        change.restored
          ? { restored: { ...change.restored, artifacts: artifactsOf(change.restored.artifacts) } }
          : { placed: artifactsOf(change.placed ?? []) },
      ),
      deploymentId: row.deployment_id,
      since: row.since ?? undefined,
      liveColour: undefined,
    });
  }
  for (const [environment, baseline] of folded) await recordBaseline(client, environment, baseline);
}

/**
 * The deployment service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes
 * them again: `environments` and `deployments` from their streams' final states (a deployment's
 * created_at is its plan's time), and `environment_outcomes` from the deployments' outcome events:
 * the last sequence handed out is the highest they carry (a command waiting on the lock takes the
 * next), the live colour the latest blue-green success's or rollback's by sequence, and the
 * baseline every success and rollback folded in sequence order, as the commands wrote it.
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
    // sequence and colour among them (the writes keep the highest sequence, whatever order the
    // calls come in); their successes and rollbacks are kept for the fold at the end.
    deployment: streamRowsInBatches(deploymentsWithOutcomes, async (client, streams) => {
      const found = streams.flatMap(({ state }) => (state.state.deployment ? [state] : []));
      await saveDeployments(
        client,
        found.map(({ state }) => state.deployment as Deployment),
      );
      const sequences = new Map<string, bigint>();
      const kept: { environment: string; outcome: BaselineOutcome }[] = [];
      const colours: { environment: string; colour: ReturnType<typeof abandonedColours>[number] }[] = [];
      for (const { state, outcomes } of found) {
        const deployment = state.deployment as Deployment;
        for (const { environment, environmentSequence } of outcomes)
          sequences.set(environment, max(sequences.get(environment), environmentSequence));
        for (const outcome of baselinesOf(deployment, outcomes))
          kept.push({ environment: deployment.environment, outcome });
        for (const colour of abandonedColours(outcomes)) colours.push({ environment: deployment.environment, colour });
      }
      await restoreEnvironmentSequences(client, sequences);
      for (const { environment, outcome } of kept) await recordLiveColour(client, environment, outcome);
      for (const { environment, colour } of colours) await recordLiveColour(client, environment, colour);
      await keepForFold(client, kept);
      return found.length;
    }),
  },
  rebuilt: foldKept,
};
