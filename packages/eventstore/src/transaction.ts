import type { Pool, PoolClient } from "pg";

/**
 * COMMIT, refusing a transaction PostgreSQL rolled back instead: after a statement failed in it
 * (its error caught and passed over), COMMIT answers ROLLBACK without an error, and nothing of
 * the transaction was written.
 */
export async function commit(client: Pick<PoolClient, "query">): Promise<void> {
  const { command } = await client.query("COMMIT");
  if (command !== "COMMIT")
    throw new Error(`COMMIT rolled the transaction back (${command}): a statement in it had failed`);
}

/** Runs fn in one transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when it throws. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await commit(client);
    return result;
  } catch (error) {
    // A connection that cannot even roll back is discarded rather than returned to the pool.
    await client.query("ROLLBACK").catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}
