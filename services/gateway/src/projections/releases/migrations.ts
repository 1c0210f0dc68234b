/** The release views: overview rows with the folded state, the audit trail, the event log. */
export const releaseProjectionMigrations = [
  {
    version: 1,
    name: "release projection",
    sql: `
      CREATE TABLE release_view (
        release_id    uuid PRIMARY KEY,
        key           text NOT NULL UNIQUE,
        title         text NOT NULL,
        description   text NOT NULL,
        type          text NOT NULL,
        category      text NOT NULL,
        owner         text NOT NULL,
        coordinator   text NOT NULL,
        stakeholders  jsonb NOT NULL,
        risk          text NOT NULL,
        planned_start timestamptz,
        planned_end   timestamptz,
        phase         text NOT NULL,
        registered_by text NOT NULL,
        registered_at timestamptz NOT NULL,
        version       bigint NOT NULL,
        updated_at    timestamptz NOT NULL
      );
      CREATE INDEX release_view_page ON release_view (registered_at DESC, release_id DESC);`,
  },
  {
    version: 2,
    name: "release lifecycle: state snapshot, pinned model, deadlines, history",
    sql: `
      -- The release state folded with the release service's own evolve (as protobuf JSON), and
      -- the model version it pinned, so gates are evaluated exactly as the service does.
      ALTER TABLE release_view
        ADD COLUMN status       text NOT NULL DEFAULT 'ACTIVE',
        ADD COLUMN phase_due_at timestamptz,
        ADD COLUMN snapshot     jsonb,
        ADD COLUMN model        jsonb;
      CREATE INDEX release_view_overdue ON release_view (phase_due_at) WHERE status = 'ACTIVE';
      -- Keys are unique in the release service; a read model must not refuse what its source
      -- accepted (several release databases behind one topic in tests, a reset service in dev).
      ALTER TABLE release_view DROP CONSTRAINT release_view_key_key;
      CREATE INDEX release_view_key ON release_view (key);

      -- Audit trail of every release event; seq orders the SSE stream (and resumes it).
      CREATE TABLE release_history (
        seq         bigserial UNIQUE,
        release_id  uuid NOT NULL,
        version     bigint NOT NULL,
        event_type  text NOT NULL,
        occurred_at timestamptz NOT NULL,
        actor       text NOT NULL,
        reason      text NOT NULL,
        phase       text NOT NULL,
        PRIMARY KEY (release_id, version)
      );`,
  },
  {
    version: 3,
    name: "release history: event, correlation, causation and request ids (the audit trail)",
    sql: `
      ALTER TABLE release_history
        ADD COLUMN event_id       text NOT NULL DEFAULT '',
        ADD COLUMN correlation_id text NOT NULL DEFAULT '',
        ADD COLUMN causation_id   text NOT NULL DEFAULT '',
        ADD COLUMN request_id     text NOT NULL DEFAULT '';
      CREATE INDEX release_history_correlation ON release_history (correlation_id) WHERE correlation_id <> '';`,
  },
  {
    version: 4,
    name: "release event log: what each folded state is folded from, to refold it when evolve changes",
    sql: `
      -- Filled from this version on: a release projected before has no log and keeps its snapshot
      -- through a rules change; rebuild the view (new consumer group and database) to refold it.
      CREATE TABLE release_event_log (
        release_id uuid NOT NULL,
        version    bigint NOT NULL,
        event_type text NOT NULL,
        event      bytea NOT NULL,
        PRIMARY KEY (release_id, version)
      );`,
  },
  {
    version: 5,
    name: "release log entries in rows of their own, out of the snapshot",
    sql: `
      -- A release's log only grows: kept in the snapshot, every event rewrote all of it (a release
      -- of thousands of entries, a megabyte of JSON an event). Entry n of the log is row n here;
      -- log_length is how many there are, at the row's version.
      CREATE TABLE release_log_view (
        release_id uuid NOT NULL,
        position   integer NOT NULL,
        entry      jsonb NOT NULL,
        PRIMARY KEY (release_id, position)
      );
      ALTER TABLE release_view ADD COLUMN log_length integer NOT NULL DEFAULT 0;
      INSERT INTO release_log_view (release_id, position, entry)
        SELECT v.release_id, e.n - 1, e.entry
        FROM release_view v, jsonb_array_elements(v.snapshot->'log') WITH ORDINALITY AS e (entry, n)
        WHERE jsonb_typeof(v.snapshot->'log') = 'array';
      UPDATE release_view SET log_length = jsonb_array_length(snapshot->'log'), snapshot = snapshot - 'log'
        WHERE jsonb_typeof(snapshot->'log') = 'array';`,
  },
];
