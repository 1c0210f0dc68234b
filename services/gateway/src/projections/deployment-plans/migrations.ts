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
  {
    version: 2,
    name: "deployment plans: paused is a flag beside the status, as in the deployment service; listed by first event",
    sql: `
      UPDATE deployment_plan_view
         SET status = CASE WHEN (plan->>'started')::boolean
                             OR jsonb_path_exists(plan, '$.steps[*] ? (@.state != "PENDING" && @.state != "READY")')
                           THEN 'IN_PROGRESS' ELSE 'SCHEDULED' END
       WHERE status = 'PAUSED';
      UPDATE deployment_plan_view SET plan = (plan - 'started') || jsonb_build_object('status', status, 'paused', true)
       WHERE plan->>'status' = 'PAUSED';
      UPDATE deployment_plan_view SET plan = plan - 'started' WHERE plan ? 'started';
      ALTER TABLE deployment_plan_view ADD COLUMN first_event_at timestamptz;
      UPDATE deployment_plan_view SET first_event_at = COALESCE((plan->>'plannedAt')::timestamptz, updated_at);
      ALTER TABLE deployment_plan_view ALTER COLUMN first_event_at SET NOT NULL;
      CREATE INDEX deployment_plan_view_listing ON deployment_plan_view (first_event_at DESC, deployment_id DESC);`,
  },
];
