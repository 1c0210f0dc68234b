/** The change calendar views: change requests and freeze windows. */
export const changeProjectionMigrations = [
  {
    version: 1,
    name: "change and freeze window projection",
    sql: `
      CREATE TABLE change_view (
        change_request_id              uuid PRIMARY KEY,
        key                            text NOT NULL,
        type                           text NOT NULL,
        state                          text NOT NULL,
        title                          text NOT NULL,
        description                    text NOT NULL,
        justification                  text NOT NULL,
        requester                      text NOT NULL,
        affected_ci_ids                text[] NOT NULL,
        environments                   text[] NOT NULL,
        implementation_plan            text NOT NULL,
        test_plan                      text NOT NULL,
        backout_plan                   text NOT NULL,
        impact                         text NOT NULL,
        urgency                        text NOT NULL,
        risk                           text NOT NULL,
        board                          text NOT NULL,
        required_approvals             int NOT NULL DEFAULT 0,
        approvals                      jsonb NOT NULL DEFAULT '[]',
        window_start                   timestamptz,
        window_end                     timestamptz,
        linked_release_id              text NOT NULL,
        template_id                    text NOT NULL,
        assessment_notes               text NOT NULL DEFAULT '',
        rejection_reason               text NOT NULL DEFAULT '',
        overridden_freeze_ids          text[] NOT NULL DEFAULT '{}',
        freeze_override_justification  text NOT NULL DEFAULT '',
        scheduling_collisions          jsonb NOT NULL DEFAULT '[]',
        tasks                          jsonb NOT NULL DEFAULT '[]',
        failure_reason                 text NOT NULL DEFAULT '',
        review_outcome                 text NOT NULL DEFAULT 'UNSPECIFIED',
        review_notes                   text NOT NULL DEFAULT '',
        raised_at                      timestamptz NOT NULL,
        updated_at                     timestamptz NOT NULL,
        version                        bigint NOT NULL
      );
      CREATE INDEX change_view_page ON change_view (raised_at DESC, change_request_id DESC);
      CREATE INDEX change_view_window ON change_view (window_start, window_end);
      CREATE INDEX change_view_cis ON change_view USING gin (affected_ci_ids);
      CREATE TABLE freeze_window_view (
        freeze_window_id uuid PRIMARY KEY,
        name             text NOT NULL,
        reason           text NOT NULL,
        window_start     timestamptz NOT NULL,
        window_end       timestamptz NOT NULL,
        scope_all        boolean NOT NULL,
        scope_ci_ids     text[] NOT NULL,
        scope_environments text[] NOT NULL,
        lifted           boolean NOT NULL,
        declared_by      text NOT NULL,
        version          bigint NOT NULL
      );
      CREATE INDEX freeze_window_view_window ON freeze_window_view (window_start, window_end);`,
  },
  {
    version: 2,
    name: "change cancellation and first commit time",
    // Rows projected before keep the defaults: no such events existed then.
    sql: `
      ALTER TABLE change_view
        ADD COLUMN cancellation_reason text NOT NULL DEFAULT '',
        ADD COLUMN cancelled_by        text NOT NULL DEFAULT '',
        ADD COLUMN first_commit_time   timestamptz;`,
  },
  {
    version: 3,
    name: "change awaiting its tasks after a deployment's success",
    // Rows projected before keep the defaults: no such events existed then.
    sql: `
      ALTER TABLE change_view
        ADD COLUMN awaiting_tasks_deployment_id text NOT NULL DEFAULT '',
        ADD COLUMN awaiting_tasks_environment   text NOT NULL DEFAULT '';`,
  },
  {
    version: 4,
    name: "the deployment that implemented a change",
    // Rows projected before show none until the gateway replays the change topic.
    sql: "ALTER TABLE change_view ADD COLUMN implemented_by_deployment_id text NOT NULL DEFAULT ''",
  },
  {
    version: 5,
    name: "the environments where a change naming several has been implemented so far",
    // No such events existed before: rows projected before keep the default.
    sql: "ALTER TABLE change_view ADD COLUMN implemented_environments text[] NOT NULL DEFAULT '{}'",
  },
];
