import type { MigrationSet } from "./migrations.js";

/** Channel the store NOTIFYs on every append (delivered at commit), so the relay wakes at once. */
export const EVENTS_CHANNEL = "rdm_events";

export const eventStoreMigrations: MigrationSet = {
  component: "eventstore",
  migrations: [
    {
      version: 1,
      name: "events, streams, command_results",
      sql: `
CREATE TABLE events (
  global_position bigserial   PRIMARY KEY,
  -- The appending transaction's id: the relay orders by it (see @rdm/relay README).
  transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
  stream_id       text        NOT NULL,
  stream_type     text        NOT NULL,
  version         bigint      NOT NULL,
  event_id        uuid        NOT NULL UNIQUE,
  type            text        NOT NULL,
  data            bytea       NOT NULL,
  metadata        jsonb       NOT NULL DEFAULT '{}',
  recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);
CREATE INDEX events_commit_order ON events (transaction_id, global_position);
CREATE INDEX events_stream_type ON events (stream_type, global_position);

CREATE TABLE streams (
  stream_id           text        PRIMARY KEY,
  stream_type         text        NOT NULL,
  version             bigint      NOT NULL,
  -- Transaction of the last append; a later append must not have an older transaction id,
  -- or ordering by transaction id would reorder this stream.
  last_transaction_id xid8        NOT NULL,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE command_results (
  request_id   text        PRIMARY KEY,
  request_hash text,
  response     bytea,
  stream_id    text,
  created_at   timestamptz NOT NULL DEFAULT now()
);`,
    },
  ],
};
