import pg from "pg";

/** What a database command prints on standard error, with exit code 2, when it will not run. */
export class CommandRefused extends Error {
  override readonly name = "CommandRefused";
}

/**
 * An operator's command on a service's database (DATABASE_URL): prints what `run` returns; exit
 * code 2 when refused (no DATABASE_URL, or `run` throws CommandRefused), 1 when it failed.
 */
export async function runDatabaseCommand(label: string, run: (pool: pg.Pool) => Promise<string>): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) return refuse(`${label}: set DATABASE_URL to the service's database`);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    console.log(await run(pool));
  } catch (error) {
    if (error instanceof CommandRefused) return refuse(`${label}: ${error.message}`);
    // A refused connection to a name with two addresses is an AggregateError with no message.
    const { message, code } = error as { message?: string; code?: string };
    console.error(`${label} failed: ${message || code || String(error)}`);
    process.exitCode = 1;
  } finally {
    await pool.end();
  }
}

function refuse(why: string): void {
  console.error(why);
  process.exitCode = 2;
}
