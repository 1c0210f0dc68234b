import { EVENTS_CHANNEL } from "@rdm/eventstore";
import type { PoolClient } from "pg";
import { lead } from "./leader.js";
import type { RelayContext } from "./relay-context.js";

// Which replica publishes: the one whose database session holds the relay's advisory lock.
// The others stand by and try again every poll interval; a lost session releases the lock.

/** First key of the two-int advisory lock; the second is hashtext(relay name). */
const RELAY_LOCK_CLASS = 0x5244_4d02;

/** Tries the lock until it is ours, stop() is called or the session breaks; true when ours. */
async function acquireLock(
  ctx: RelayContext,
  client: PoolClient,
  broken: () => Error | undefined,
  onStandby: () => void,
): Promise<boolean> {
  while (!ctx.status.stopping && !broken()) {
    const { rows } = await client.query<{ locked: boolean }>(
      "SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked",
      [RELAY_LOCK_CLASS, ctx.name],
    );
    if (rows[0]?.locked) return true;
    onStandby();
    await ctx.wakeup.pause(ctx.pollIntervalMs, false);
  }
  return false;
}

/** Stands by or leads until stop(); a lost connection is logged and reopened with backoff. */
export async function runRelay(ctx: RelayContext): Promise<void> {
  let backoff = 100;
  let standingBy = false;
  while (!ctx.status.stopping) {
    let client: PoolClient | undefined;
    let broken: Error | undefined;
    try {
      client = await ctx.pool.connect();
      client.on("error", (error) => {
        broken = error;
        ctx.wakeup.wake();
      });
      client.on("notification", ctx.wakeup.wake);
      const locked = await acquireLock(
        ctx,
        client,
        () => broken,
        () => {
          if (!standingBy) ctx.log.info("another relay is active; standing by");
          standingBy = true;
        },
      );
      if (!locked) continue;
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      ctx.status.leader = true;
      standingBy = false;
      ctx.log.info("relay is active");
      await lead(ctx, client, () => broken);
      backoff = 100;
    } catch (error) {
      ctx.status.lastError = error as Error;
      ctx.log.error({ err: error, retryInMs: backoff }, "relay lost its database connection; reconnecting");
      broken ??= error as Error;
      await ctx.wakeup.pause(backoff, false);
      backoff = Math.min(backoff * 2, ctx.maxBackoffMs);
    } finally {
      ctx.status.leader = false;
      // Destroying the session releases the advisory lock and the LISTEN with it.
      client?.release(true);
    }
  }
}
