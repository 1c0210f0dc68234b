/** The audit trail: every event of every service, in projection order (seq: the SSE id and page cursor). */
export const auditMigrations = [
  {
    version: 1,
    name: "audit trail of every service's events, and the combined views each one changed",
    sql: `
      CREATE TABLE audit_event (
        seq               bigserial UNIQUE,
        event_id          text PRIMARY KEY,
        source            text NOT NULL,
        event_type        text NOT NULL,
        subject           text NOT NULL,
        stream_version    bigint NOT NULL,
        occurred_at       timestamptz NOT NULL,
        actor             text NOT NULL,
        correlation_id    text NOT NULL,
        causation_id      text NOT NULL,
        request_id        text NOT NULL,
        release_id        text NOT NULL,
        change_request_id text NOT NULL,
        deployment_id     text NOT NULL,
        environments      text[] NOT NULL,
        -- the combined views the event changed: what a live dashboard refreshes
        views             text[] NOT NULL
      );
      CREATE INDEX audit_event_actor ON audit_event (actor, seq);
      CREATE INDEX audit_event_release ON audit_event (release_id, seq) WHERE release_id <> '';
      CREATE INDEX audit_event_change ON audit_event (change_request_id, seq) WHERE change_request_id <> '';
      CREATE INDEX audit_event_time ON audit_event (occurred_at);
      CREATE INDEX audit_event_environments ON audit_event USING gin (environments);`,
  },
];
