import type { Migration } from "@rdm/eventstore";

/**
 * The service's own tables, written in the same transaction as the events they derive from, so
 * they are never behind the event store: lookups by name+version, listing with filters, and the
 * relationship adjacency that impact analysis walks (indexed on the target, since impact
 * travels against the arrows).
 */
export const configurationMigrations: Migration[] = [
  {
    version: 1,
    name: "configuration items, relationships, DML artifacts, baselines",
    sql: `
      CREATE TABLE configuration_items (
        ci_id text PRIMARY KEY,
        name text NOT NULL,
        type int NOT NULL,
        owner text NOT NULL,
        status int NOT NULL,
        item bytea NOT NULL,
        updated_at timestamptz NOT NULL
      );
      CREATE INDEX configuration_items_name ON configuration_items (lower(name), ci_id);
      CREATE INDEX configuration_items_type ON configuration_items (type);
      CREATE INDEX configuration_items_owner ON configuration_items (owner);

      CREATE TABLE ci_relationships (
        source_ci_id text NOT NULL,
        type int NOT NULL,
        target_ci_id text NOT NULL,
        PRIMARY KEY (source_ci_id, type, target_ci_id)
      );
      CREATE INDEX ci_relationships_target ON ci_relationships (target_ci_id) INCLUDE (source_ci_id, type);

      CREATE TABLE dml_artifacts (
        artifact_id text PRIMARY KEY,
        name text NOT NULL,
        version text NOT NULL,
        status int NOT NULL,
        artifact bytea NOT NULL,
        registered_at timestamptz NOT NULL,
        UNIQUE (name, version)
      );

      CREATE TABLE baselines (
        environment text PRIMARY KEY,
        baseline bytea NOT NULL,
        updated_at timestamptz NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "query table rebuilds, which the impact graph follows",
    // A rebuild writes rows without events: AnalyzeImpact's in-memory graph, which follows the
    // events, loads everything again when a rebuild newer than its load is recorded here.
    sql: `
      CREATE TABLE query_table_rebuilds (
        rebuild bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rebuilt_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];
