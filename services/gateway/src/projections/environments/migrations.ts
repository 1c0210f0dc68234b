/** The environments as the deployment service defines them: promotion order, protection, freeze. */
export const environmentDefinitionMigrations = [
  {
    version: 1,
    name: "environment definitions: the newest definition of each environment",
    sql: `
      CREATE TABLE environment_definition_view (
        environment    text PRIMARY KEY,
        promotion_rank integer NOT NULL,
        definition     jsonb NOT NULL,
        -- the stream version of the environment's newest event applied: replays change nothing
        version        bigint NOT NULL,
        updated_at     timestamptz NOT NULL
      );`,
  },
];
