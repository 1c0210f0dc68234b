/** The deployment views: deployments, the outcome log, environments and their inventory, the feed. */
export const deploymentProjectionMigrations = [
  {
    version: 1,
    name: "deployments per release and environment, environment inventory",
    sql: `
      CREATE TABLE deployment_view (
        deployment_id        text PRIMARY KEY,
        release_id           text NOT NULL,
        environment          text NOT NULL,
        state                text NOT NULL,
        -- environment_sequence of the event that set state (0: none carried one)
        state_sequence       bigint NOT NULL,
        strategy             text NOT NULL,
        artifacts            jsonb NOT NULL,
        restored_artifacts   jsonb,
        failure_reason       text NOT NULL DEFAULT '',
        failed_target_ci_ids jsonb NOT NULL DEFAULT '[]',
        rollback_reason      text NOT NULL DEFAULT '',
        -- the earliest time any of its events says: orders lists the same way live and rebuilt
        first_event_at       timestamptz NOT NULL,
        started_at           timestamptz,
        finished_at          timestamptz,
        rolled_back_at       timestamptz,
        updated_at           timestamptz NOT NULL
      );
      CREATE INDEX deployment_view_page ON deployment_view (first_event_at DESC, deployment_id DESC);
      CREATE INDEX deployment_view_release ON deployment_view (release_id);
      CREATE INDEX deployment_view_environment ON deployment_view (environment, first_event_at DESC);

      -- Every outcome of every environment, to fold the inventory in environment order.
      CREATE TABLE deployment_outcome_log (
        arrival              bigserial PRIMARY KEY,
        event_id             text NOT NULL UNIQUE,
        environment          text NOT NULL,
        environment_sequence bigint NOT NULL,
        kind                 text NOT NULL,
        deployment_id        text NOT NULL,
        release_id           text NOT NULL,
        occurred_at          timestamptz NOT NULL,
        artifacts            jsonb NOT NULL
      );
      -- The same outcome published again under another ce id is one outcome.
      CREATE UNIQUE INDEX deployment_outcome_log_sequence ON deployment_outcome_log (environment, environment_sequence)
        WHERE environment_sequence > 0;

      CREATE TABLE environment_view (
        environment               text PRIMARY KEY,
        health                    text NOT NULL,
        last_deployment_id        text NOT NULL,
        last_release_id           text NOT NULL,
        last_outcome              text NOT NULL,
        last_environment_sequence bigint NOT NULL,
        updated_at                timestamptz NOT NULL
      );
      CREATE TABLE environment_inventory_view (
        environment      text NOT NULL,
        target_ci_id     text NOT NULL,
        artifact_name    text NOT NULL,
        artifact_version text NOT NULL,
        artifact_id      text NOT NULL,
        since            timestamptz NOT NULL,
        deployment_id    text NOT NULL,
        release_id       text NOT NULL,
        via              text NOT NULL,
        PRIMARY KEY (environment, target_ci_id, artifact_name)
      );`,
  },
  {
    version: 2,
    name: "deployment feed: every deployment event in projection order, for the SSE streams",
    sql: `
      CREATE TABLE deployment_feed (
        seq                  bigserial PRIMARY KEY,
        event_id             text NOT NULL UNIQUE,
        deployment_id        text NOT NULL,
        release_id           text NOT NULL,
        environment          text NOT NULL,
        event_type           text NOT NULL,
        environment_sequence bigint NOT NULL,
        occurred_at          timestamptz NOT NULL,
        -- the event changed the environment's inventory (an outcome not seen before)
        inventory_changed    boolean NOT NULL
      );
      CREATE INDEX deployment_feed_environment ON deployment_feed (environment, seq) WHERE inventory_changed;`,
  },
  {
    version: 3,
    name: "blue-green: the colour serving traffic after each outcome, and in each environment",
    sql: `
      -- '': not blue-green, or recorded before the events carried it.
      ALTER TABLE deployment_outcome_log ADD COLUMN live_colour text NOT NULL DEFAULT '';
      ALTER TABLE environment_view ADD COLUMN live_colour text NOT NULL DEFAULT '';`,
  },
  {
    version: 4,
    name: "the artifact names a rollback restored",
    sql: `
      -- []: not a rollback, or one recorded before rollbacks named them (it lists the whole inventory).
      ALTER TABLE deployment_outcome_log ADD COLUMN restored_artifact_names jsonb NOT NULL DEFAULT '[]';`,
  },
  {
    version: 5,
    name: "the targets a rollback restored its artifact names on",
    sql: `
      -- []: not a rollback, or one recorded before rollbacks named them (the names on every target).
      ALTER TABLE deployment_outcome_log ADD COLUMN restored_target_ci_ids jsonb NOT NULL DEFAULT '[]';`,
  },
];
