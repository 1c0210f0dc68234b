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
    name: "deployment plans: paused is a flag beside the status, as in the deployment service; every deployment listed by its first event",
    sql: `
      -- A stored PAUSED plan keeps the status it was paused in: VERIFYING while its verification
      -- step was claimed, IN_PROGRESS once a step ran, else SCHEDULED; an ended one is not paused.
      UPDATE deployment_plan_view
         SET status = CASE
               WHEN jsonb_path_exists(plan, '$.steps[*] ? (@.state == "CLAIMED" && @.kind == "VERIFY")') THEN 'VERIFYING'
               WHEN (plan->>'started')::boolean
                 OR jsonb_path_exists(plan, '$.steps[*] ? (@.state != "PENDING" && @.state != "READY")') THEN 'IN_PROGRESS'
               ELSE 'SCHEDULED' END
       WHERE status = 'PAUSED';
      UPDATE deployment_plan_view SET plan = (plan - 'started') || jsonb_build_object('status', status, 'paused', true)
       WHERE plan->>'status' = 'PAUSED';
      UPDATE deployment_plan_view SET plan = plan - 'started' WHERE plan ? 'started';
      UPDATE deployment_plan_view SET plan = plan || '{"paused": false}'
       WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'ROLLED_BACK') AND (plan->>'paused')::boolean;
      -- Deployments the outcome view (gateway.deployments, migrated first) has and the plans do not
      -- (outcomes projected before the plans were): a plan of what the outcomes said, so that every
      -- deployment is listed.
      INSERT INTO deployment_plan_view (deployment_id, release_id, environment, status, plan, version, updated_at)
      SELECT d.deployment_id, d.release_id, d.environment, d.state,
             jsonb_build_object('deploymentId', d.deployment_id, 'releaseId', d.release_id,
               'environment', d.environment, 'status', d.state, 'strategy', d.strategy, 'window', null,
               'linkedChangeIds', '[]'::jsonb, 'requiredApprovals', 0, 'approvalGroup', '',
               'approvals', '[]'::jsonb, 'steps', '[]'::jsonb, 'targets', '{}'::jsonb, 'rollback', null,
               'reason', COALESCE(NULLIF(d.rollback_reason, ''), d.failure_reason), 'plannedAt', null),
             0, d.updated_at
        FROM deployment_view d
       WHERE NOT EXISTS (SELECT 1 FROM deployment_plan_view p WHERE p.deployment_id = d.deployment_id);
      ALTER TABLE deployment_plan_view ADD COLUMN first_event_at timestamptz;
      UPDATE deployment_plan_view p
         SET first_event_at = COALESCE((p.plan->>'plannedAt')::timestamptz,
               (SELECT d.first_event_at FROM deployment_view d WHERE d.deployment_id = p.deployment_id), p.updated_at);
      ALTER TABLE deployment_plan_view ALTER COLUMN first_event_at SET NOT NULL;
      CREATE INDEX deployment_plan_view_listing ON deployment_plan_view (first_event_at DESC, deployment_id DESC);
      CREATE INDEX deployment_plan_view_environment_listing
        ON deployment_plan_view (environment, first_event_at DESC, deployment_id DESC);
      DROP INDEX deployment_plan_view_release;
      CREATE INDEX deployment_plan_view_release
        ON deployment_plan_view (release_id, first_event_at DESC, deployment_id DESC);`,
  },
];
