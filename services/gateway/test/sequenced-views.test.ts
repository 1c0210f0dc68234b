// Readers of the release history and the audit trail resume after the last seq they saw, so a
// transaction must not draw a seq while another that drew before it is still open: each chunk
// takes the view's lock before its insert draws any (serializedBy), against real PostgreSQL.
import { randomUUID } from "node:crypto";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { ReleaseModelVersionCreatedSchema, ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { waitFor } from "@rdm/testkit";
import type pg from "pg";
import { projections } from "../src/projections/index.js";
import { projectionChunkHandler } from "../src/projections/projection.js";
import { eventsOn, projectionDatabase, type TopicEvent } from "./chunk-fixture.js";

const releaseEvent = eventsOn(RELEASE_EVENTS_TOPIC);
const registered = () => {
  const releaseId = randomUUID();
  return releaseEvent(ReleaseRegisteredSchema, 1, {
    releaseId,
    key: `REL-${releaseId.slice(0, 4)}`,
    title: "a release",
    type: ReleaseType.MINOR,
    owner: "olga",
    phase: ReleasePhase.PLANNING,
  });
};
// Not a release's event: the audit trail only.
const modelVersion = () => releaseEvent(ReleaseModelVersionCreatedSchema, 1, {});

const handleChunk = projectionChunkHandler(projections, "");
const apply = (tx: pg.PoolClient, events: TopicEvent[]) =>
  handleChunk(
    events.map(({ envelope, info }) => ({ event: envelope, info })),
    tx,
  );

test.each([
  ["release_history", registered],
  ["audit_event", modelVersion],
])(
  "%s: a second chunk draws no seq until the first one's transaction ends, and commits after it",
  async (table, second) => {
    const pool = await projectionDatabase();
    const lastValue = async () => {
      const { rows } = await pool.query<{ last_value: string | null }>(
        `SELECT last_value FROM pg_sequences WHERE sequencename = pg_get_serial_sequence($1, 'seq')::regclass::text`,
        [table],
      );
      return rows[0]?.last_value;
    };
    const first = await pool.connect();
    const other = await pool.connect();
    try {
      await first.query("BEGIN");
      await apply(first, [registered(), registered()]);
      const drawnByFirst = await lastValue();
      expect(drawnByFirst).not.toBeNull();
      await other.query("BEGIN");
      const otherPid = (await other.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
      const applied = apply(other, [second()]);
      await waitFor(
        async () =>
          (await pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'advisory'", [otherPid]))
            .rowCount === 1,
        { timeoutMs: 10_000, description: "the second chunk waiting for the view's lock" },
      );
      expect(await lastValue()).toBe(drawnByFirst);
      await first.query("COMMIT");
      await applied;
      await other.query("COMMIT");
      const { rows } = await pool.query<{ seq: string; event_type: string }>(
        `SELECT seq, event_type FROM ${table} ORDER BY seq`,
      );
      expect(rows.at(-1)?.event_type).toBe(second().envelope.type);
      expect(Number(rows.at(-1)?.seq)).toBeGreaterThan(Number(drawnByFirst));
    } finally {
      first.release();
      other.release();
    }
  },
);
