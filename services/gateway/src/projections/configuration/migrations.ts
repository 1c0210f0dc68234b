import { baselineEventsMigration } from "./baselines.js";

/** The CMDB, DML and baseline views. */
export const configurationProjectionMigrations = [
  {
    version: 1,
    name: "CMDB, DML and baseline views",
    sql: `
      CREATE TABLE cmdb_ci_view (
        ci_id      text PRIMARY KEY,
        name       text NOT NULL,
        type       text NOT NULL,
        owner      text NOT NULL,
        status     text NOT NULL,
        attributes jsonb NOT NULL,
        version    bigint NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
      );
      CREATE INDEX cmdb_ci_view_page ON cmdb_ci_view (lower(name), ci_id);
      CREATE TABLE cmdb_relationship_view (
        source_ci_id text NOT NULL,
        type         text NOT NULL,
        target_ci_id text NOT NULL,
        PRIMARY KEY (source_ci_id, type, target_ci_id)
      );
      CREATE INDEX cmdb_relationship_view_target ON cmdb_relationship_view (target_ci_id);
      CREATE TABLE cmdb_ci_history_view (
        ci_id       text NOT NULL,
        version     bigint NOT NULL,
        occurred_at timestamptz NOT NULL,
        actor       text NOT NULL,
        event_type  text NOT NULL,
        summary     text NOT NULL,
        PRIMARY KEY (ci_id, version)
      );
      CREATE TABLE dml_artifact_view (
        artifact_id      text PRIMARY KEY,
        name             text NOT NULL,
        version          text NOT NULL,
        sha256           text NOT NULL,
        size_bytes       bigint NOT NULL,
        media_uri        text NOT NULL,
        dependencies     jsonb NOT NULL,
        status           text NOT NULL,
        integrity        text NOT NULL,
        status_reason    text NOT NULL,
        registered_by    text NOT NULL,
        registered_at    timestamptz NOT NULL,
        last_verified_at timestamptz,
        stream_version   bigint NOT NULL
      );
      CREATE INDEX dml_artifact_view_page ON dml_artifact_view (registered_at DESC, artifact_id DESC);
      CREATE TABLE baseline_entry_view (
        environment      text NOT NULL,
        ci_id            text NOT NULL,
        artifact_name    text NOT NULL,
        artifact_version text NOT NULL,
        artifact_id      text NOT NULL,
        deployment_id    text NOT NULL,
        deployed_at      timestamptz NOT NULL,
        PRIMARY KEY (environment, ci_id, artifact_name)
      );
      CREATE TABLE baseline_view (
        environment                   text PRIMARY KEY,
        health                        text NOT NULL,
        last_deployment_id            text NOT NULL,
        last_known_good               jsonb NOT NULL,
        last_known_good_deployment_id text,
        last_known_good_at            timestamptz,
        version                       bigint NOT NULL,
        updated_at                    timestamptz NOT NULL
      );`,
  },
  baselineEventsMigration,
];
