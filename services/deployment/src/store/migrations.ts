import type { Migration } from "@rdm/eventstore";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";

/**
 * The deployment service's own tables, each written in the transaction that appends the events
 * it reflects: query rows (folded aggregate as protobuf bytes plus filter columns), the step
 * queue executors claim from, and per environment the outcome sequence and current baseline.
 */
export const deploymentMigrations: Migration[] = [
  {
    version: 1,
    name: "environments, deployments, step queue, outcome sequence",
    sql: `
      CREATE TABLE environments (
        name text PRIMARY KEY,
        promotion_rank int NOT NULL,
        environment bytea NOT NULL
      );
      -- Per environment: the last outcome sequence handed out (DeploymentStarted/Succeeded/Failed/
      -- RolledBack), and what runs there. The row lock orders one environment's outcomes.
      CREATE TABLE environment_outcomes (
        name text PRIMARY KEY,
        last_sequence bigint NOT NULL DEFAULT 0,
        baseline jsonb NOT NULL DEFAULT '[]',
        baseline_deployment_id text NOT NULL DEFAULT '',
        baseline_since timestamptz,
        live_colour text NOT NULL DEFAULT ''
      );
      CREATE TABLE deployments (
        deployment_id uuid PRIMARY KEY,
        release_id uuid NOT NULL,
        environment text NOT NULL,
        state int NOT NULL,
        artifact_ids text[] NOT NULL,
        created_at timestamptz NOT NULL,
        deployment bytea NOT NULL
      );
      CREATE INDEX deployments_by_environment ON deployments (environment, state);
      CREATE INDEX deployments_by_release ON deployments (release_id);
      -- The steps executors claim: READY rows from available_at on (SELECT ... FOR UPDATE SKIP
      -- LOCKED), CLAIMED rows again once their lease expired. held: paused or awaiting promotion.
      CREATE TABLE step_queue (
        deployment_id uuid NOT NULL,
        step_index int NOT NULL,
        environment text NOT NULL,
        required_labels text[] NOT NULL,
        status text NOT NULL,
        held boolean NOT NULL,
        available_at timestamptz,
        fencing_token bigint NOT NULL,
        lease_expires_at timestamptz,
        PRIMARY KEY (deployment_id, step_index)
      );
      CREATE INDEX step_queue_claimable ON step_queue (available_at) WHERE status IN ('READY', 'CLAIMED') AND NOT held;
    `,
  },
  {
    version: 4,
    name: "lapsed leases for the sweep",
    sql: "CREATE INDEX step_queue_leases ON step_queue (lease_expires_at) WHERE status = 'CLAIMED';",
  },
  {
    version: 8,
    name: "deployments listed by keyset",
    // Page tokens carry created_at as an ISO string (milliseconds): the column holds no finer.
    sql: `
      UPDATE deployments SET created_at = date_trunc('milliseconds', created_at);
      CREATE INDEX deployments_page ON deployments (created_at DESC, deployment_id DESC);
    `,
  },
  {
    version: 9,
    name: "idle claims' answers found by age",
    // The "nothing waiting" answers of ClaimStep (stream id '', see forgetIdleClaims).
    sql: "CREATE INDEX command_results_idle_claims ON command_results (created_at) WHERE stream_id = '';",
  },
  {
    version: 11,
    name: "an outcome row per environment, with the outcomes that set its baseline and live colour",
    // rebuild-tables writes each deployment's outcomes in no particular order: the sequences keep
    // the environment's latest. Rows from before are at 0 until the first rebuild.
    sql: `
      ALTER TABLE environment_outcomes ADD COLUMN baseline_sequence bigint NOT NULL DEFAULT 0,
        ADD COLUMN live_colour_sequence bigint NOT NULL DEFAULT 0;
      INSERT INTO environment_outcomes (name) SELECT name FROM environments ON CONFLICT (name) DO NOTHING;
    `,
  },
  {
    version: 15,
    name: "leases kept only by claimed steps and by steps ended under their holder",
    // A lease on a step no longer claimed now holds the deployment's next steps (lockNextStep):
    // the leases rows kept before this version after their step completed, failed or went back
    // to the queue hold nothing.
    sql: "UPDATE step_queue SET lease_expires_at = NULL WHERE status <> 'CLAIMED';",
  },
  {
    version: 16,
    name: "scheduled deployments found by the sweep",
    // The lease sweep cancels those whose window ended before any executor came (scheduledDeployments).
    sql: `CREATE INDEX deployments_scheduled ON deployments (deployment_id) WHERE state = ${DeploymentState.SCHEDULED};`,
  },
  {
    version: 17,
    name: "steps ended under their holder, by environment",
    // Such a step holds every step of its environment, not only its deployment's (lockNextStep):
    // after a rollback is given up, the next deployment there waits for the holder too.
    sql: `CREATE INDEX step_queue_ended_leases ON step_queue (environment)
            WHERE status IN ('COMPLETED', 'FAILED', 'SKIPPED') AND lease_expires_at IS NOT NULL;`,
  },
];
