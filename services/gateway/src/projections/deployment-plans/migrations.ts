/** The deployment plans: each deployment's folded plan, with the columns the combined views select on. */
export const deploymentPlanMigrations = [
  {
    version: 1,
    name: "deployment plans: strategy steps, window, approvals and progress per deployment",
    sql: `
      CREATE TABLE deployment_plan_view (
        deployment_id text PRIMARY KEY,
        release_id    text NOT NULL,
        environment   text NOT NULL,
        status        text NOT NULL,
        window_start  timestamptz,
        window_end    timestamptz,
        plan          jsonb NOT NULL,
        -- the stream version of the deployment's newest event applied: replays change nothing
        version       bigint NOT NULL,
        updated_at    timestamptz NOT NULL
      );
      CREATE INDEX deployment_plan_view_release ON deployment_plan_view (release_id);
      CREATE INDEX deployment_plan_view_window ON deployment_plan_view (window_start, window_end);`,
  },
];
