import { isDeepStrictEqual } from "node:util";
import pg from "pg";
import { createTestDatabase } from "./database.js";

/** What a projection spec runs: the projection's tables, and how one event changes them. */
export interface SpecifiedProjection<E> {
  /** Creates the projection's tables in a fresh, empty database (e.g. runs its migrations). */
  setup(client: pg.PoolClient): Promise<void>;
  /** Applies one event inside `tx`, a transaction the spec opens and commits per event. */
  apply(event: E, tx: pg.PoolClient): Promise<void>;
}

export interface ProjectionWhen {
  /** `query` returns exactly `expected` (deeply, in order) once every event is applied; returns the rows. */
  then(query: string, expected: Record<string, unknown>[]): Promise<Record<string, unknown>[]>;
  /** Applying the events throws an error whose message contains `message`; returns it. */
  thenThrows(message: string): Promise<Error>;
}

/**
 * Given / when / then for a projection, against real PostgreSQL: each run gets a database of its
 * own, applies the given events and then the event under test (each in its own transaction, as a
 * consumer would), and compares the rows a query returns. The database is dropped afterwards.
 */
export function projectionSpec<E>(projection: SpecifiedProjection<E>) {
  return {
    given: (events: E[]) => ({
      when: (...latest: E[]): ProjectionWhen => {
        const run = <T>(check: (pool: pg.Pool) => Promise<T>) =>
          withDatabase(projection, [...events, ...latest], check);
        return {
          // biome-ignore lint/suspicious/noThenProperty: the given/when/then vocabulary of specs; `then` takes two arguments
          then: (query, expected) =>
            run(async (pool) => {
              const { rows } = await pool.query<Record<string, unknown>>(query);
              if (!isDeepStrictEqual(rows, expected))
                throw new Error(`rows ${JSON.stringify(rows, bigints)}, expected ${JSON.stringify(expected, bigints)}`);
              return rows;
            }),
          thenThrows: async (message) => {
            const failure = await run(async () => undefined).then(
              () => undefined,
              (error: unknown) => error ?? new Error("rejected without a reason"),
            );
            if (failure === undefined) throw new Error(`every event was applied, expected an error with "${message}"`);
            if (!(failure instanceof Error) || !failure.message.includes(message)) throw failure;
            return failure;
          },
        };
      },
    }),
  };
}

async function withDatabase<E, T>(
  projection: SpecifiedProjection<E>,
  events: E[],
  check: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const db = await createTestDatabase("projection_spec");
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    await inTransaction(pool, (client) => projection.setup(client));
    for (const event of events) await inTransaction(pool, (tx) => projection.apply(event, tx));
    return await check(pool);
  } finally {
    await pool.end();
    await db.drop();
  }
}

async function inTransaction(pool: pg.Pool, fn: (tx: pg.PoolClient) => Promise<void>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await fn(client);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  } finally {
    client.release();
  }
}

const bigints = (_key: string, value: unknown) => (typeof value === "bigint" ? value.toString() : value);
