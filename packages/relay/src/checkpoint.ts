import { EVENTS_CHANNEL, type MigrationSet } from "@rdm/eventstore";
import type { Pool, PoolClient } from "pg";

export const relayMigrations: MigrationSet = {
  component: "relay",
  migrations: [
    {
      version: 1,
      name: "relay_checkpoints",
      sql: `
CREATE TABLE relay_checkpoints (
  name             text        PRIMARY KEY,
  -- Last published event in commit order: (transaction_id, global_position).
  transaction_id   xid8        NOT NULL DEFAULT '0',
  global_position  bigint      NOT NULL DEFAULT 0,
  -- The Kafka cluster the checkpoint refers to; another cluster means publish again from the start.
  kafka_cluster_id text,
  updated_at       timestamptz NOT NULL DEFAULT now()
);`,
    },
  ],
};

/** How far one relay has published, and to which Kafka cluster. */
export interface RelayCheckpoint {
  name: string;
  transactionId: string;
  globalPosition: number;
  kafkaClusterId: string | null;
  updatedAt: Date;
}

type Queryable = Pick<PoolClient, "query">;

export async function readRelayCheckpoint(db: Queryable, name = "default"): Promise<RelayCheckpoint | null> {
  const { rows } = await db.query<{
    name: string;
    transaction_id: string;
    global_position: string;
    kafka_cluster_id: string | null;
    updated_at: Date;
  }>({
    name: "rdm_relay_checkpoint",
    text: `SELECT name, transaction_id::text AS transaction_id, global_position, kafka_cluster_id, updated_at
           FROM relay_checkpoints WHERE name = $1`,
    values: [name],
  });
  const row = rows[0];
  if (!row) return null;
  return {
    name: row.name,
    transactionId: row.transaction_id,
    globalPosition: Number(row.global_position),
    kafkaClusterId: row.kafka_cluster_id,
    updatedAt: row.updated_at,
  };
}

/**
 * Disaster recovery: make the relay publish every event again from the start (consumers
 * de-duplicate by event id). A running relay picks it up on its next cycle. False when there is
 * no checkpoint to reset (the relay never ran on this database: it starts from the start anyway).
 */
export async function resetRelay(pool: Pool, name = "default"): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE relay_checkpoints SET transaction_id = '0', global_position = 0, updated_at = now() WHERE name = $1`,
    [name],
  );
  await pool.query("SELECT pg_notify($1, '')", [EVENTS_CHANNEL]);
  return (rowCount ?? 0) > 0;
}
