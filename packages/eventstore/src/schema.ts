import type { MigrationSet } from "./migrations.js";

/** Channel the store NOTIFYs on every append (delivered at commit), so the relay wakes at once. */
export const EVENTS_CHANNEL = "rdm_events";

/** How migration 2 records a request id's answer in rdm_append_batch; migration 3 adds its version. */
const RECORD_RESULT = `      INSERT INTO command_results AS c (request_id, request_hash, response, stream_id)
      VALUES (request_ids[i], request_hashes[i], responses[i], stream_ids[i])`;

const RECORD_RESULT_WITH_VERSION = `      INSERT INTO command_results AS c (request_id, request_hash, response, stream_id, stream_version)
      VALUES (request_ids[i], request_hashes[i], responses[i], stream_ids[i],
              CASE WHEN expected[i] >= 0 THEN expected[i] + n END)`;

/** rdm_append_batch as migration 2 creates it; migration 3 replaces it, recording the version. */
const APPEND_BATCH_FUNCTION = `CREATE FUNCTION rdm_append_batch(
  stream_ids text[], stream_types text[], expected bigint[], event_counts int[],
  request_ids text[], request_hashes text[], responses bytea[],
  event_ids uuid[], event_types text[], event_data bytea[], event_metadata jsonb[]
) RETURNS TABLE (outcome text, stream_version bigint, positions bigint[])
LANGUAGE plpgsql AS $append$
DECLARE
  tx xid8 := pg_current_xact_id();
  first_event int := 1;
  n int;
  new_version bigint;
  current_version bigint;
  current_stale boolean;
  position bigint;
  appended_any boolean := false;
BEGIN
  FOR i IN 1 .. coalesce(cardinality(stream_ids), 0) LOOP
    n := event_counts[i];
    outcome := NULL; stream_version := NULL; positions := NULL; new_version := NULL;
    IF request_ids[i] IS NOT NULL THEN
      -- First, so a retried command is recognized before its (now stale) expected version is
      -- checked. A concurrent duplicate waits on the primary key until this transaction ends.
${RECORD_RESULT}
      ON CONFLICT (request_id) DO NOTHING;
      IF NOT FOUND THEN
        outcome := 'duplicate';
      END IF;
    END IF;
    IF outcome IS NULL THEN
      -- The stream row is the concurrency token. A racing writer waits for this one's commit,
      -- re-checks its condition against the new row and matches nothing.
      IF expected[i] = -1 THEN
        INSERT INTO streams AS s (stream_id, stream_type, version, last_transaction_id)
        VALUES (stream_ids[i], stream_types[i], n, tx)
        ON CONFLICT (stream_id) DO UPDATE
          SET version = s.version + n, last_transaction_id = tx, updated_at = now()
          WHERE s.last_transaction_id <= tx
        RETURNING s.version INTO new_version;
      ELSIF expected[i] = 0 THEN
        INSERT INTO streams AS s (stream_id, stream_type, version, last_transaction_id)
        VALUES (stream_ids[i], stream_types[i], n, tx)
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING s.version INTO new_version;
      ELSE
        UPDATE streams AS s SET version = s.version + n, last_transaction_id = tx, updated_at = now()
        WHERE s.stream_id = stream_ids[i] AND s.version = expected[i] AND s.last_transaction_id <= tx
        RETURNING s.version INTO new_version;
      END IF;
      IF new_version IS NULL THEN
        SELECT s.version, s.last_transaction_id > tx INTO current_version, current_stale
          FROM streams AS s WHERE s.stream_id = stream_ids[i];
        stream_version := coalesce(current_version, 0);
        outcome := CASE
          WHEN current_stale AND (expected[i] = -1 OR expected[i] = stream_version) THEN 'stale'
          ELSE 'conflict' END;
        -- This append failed but the batch commits: its request id must stay free for a retry.
        IF request_ids[i] IS NOT NULL THEN
          DELETE FROM command_results AS c WHERE c.request_id = request_ids[i];
        END IF;
      ELSE
        positions := ARRAY[]::bigint[];
        FOR k IN 1 .. n LOOP
          INSERT INTO events (stream_id, stream_type, version, event_id, type, data, metadata)
          VALUES (stream_ids[i], stream_types[i], new_version - n + k, event_ids[first_event + k - 1],
                  event_types[first_event + k - 1], event_data[first_event + k - 1], event_metadata[first_event + k - 1])
          RETURNING global_position INTO position;
          positions := positions || position;
        END LOOP;
        outcome := 'appended';
        stream_version := new_version;
        appended_any := true;
      END IF;
    END IF;
    first_event := first_event + n;
    RETURN NEXT;
  END LOOP;
  IF appended_any THEN
    -- Delivered at commit (and not at all on rollback).
    PERFORM pg_notify('${EVENTS_CHANNEL}', '');
  END IF;
END
$append$;`;

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
    {
      version: 2,
      name: "append function (one statement per batch of appends)",
      sql: `
-- Appends a batch of appends to different (or the same) streams in one statement, so one round
-- trip and, run alone, one commit serve them all (group commit). Each append is decided on its
-- own and reports its outcome instead of raising, so a conflict in one never fails the others:
--   'appended'  stream_version = the stream's new version, positions = its events' positions
--   'duplicate' the request id is taken: nothing written
--   'conflict'  the expected version does not match: stream_version = the actual version
--   'stale'     the version matches but the stream's last writer has a newer transaction id
--               (ordering by transaction id would reorder the stream): retry in a new transaction
-- expected: -1 = any, 0 = no stream, n = the stream's version. Events are flattened in append
-- order; event_counts tells how many belong to each append.
${APPEND_BATCH_FUNCTION}`,
    },
    {
      version: 3,
      name: "command_results.stream_version (an answer rebuilt from its stream)",
      sql: `
-- The stream's version after the command: after its append (when appended at an expected
-- version), or as read by a no-op. A command whose answer is its stream's state at that version
-- (a whole release) records no response bytes: a retry rebuilds the answer from the stream's
-- events, so answers that grow with a stream are not stored once per command.
ALTER TABLE command_results ADD COLUMN stream_version bigint;

-- As migration 2, but recording stream_version: an append's new version is known before it is
-- written when an expected version is given (a refused append's row is deleted below).
${APPEND_BATCH_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(RECORD_RESULT, RECORD_RESULT_WITH_VERSION)}`,
    },
  ],
};
