import type { Logger } from "@rdm/observability";
import type pg from "pg";

export interface NotificationHub {
  /** Calls `onNotify` on every NOTIFY of the channel until the returned function is called. */
  subscribe(onNotify: () => void): () => void;
  close(): Promise<void>;
}

/**
 * One LISTEN connection per channel, shared by every subscriber (an SSE client each), held
 * only while someone subscribes: a hundred dashboards cost one pooled connection, not a hundred.
 * A lost connection is logged and taken again on the next subscription; subscribers poll on a
 * timer as well, so a missed notification only delays them.
 */
export function createNotificationHub(pool: pg.Pool, channel: string, logger: Logger): NotificationHub {
  const subscribers = new Set<() => void>();
  let connection: Promise<pg.PoolClient | undefined> | undefined;
  const notify = () => {
    for (const subscriber of subscribers) subscriber();
  };

  const listen = async (): Promise<pg.PoolClient | undefined> => {
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      const taken = client;
      taken.on("notification", notify);
      taken.on("error", (error) => {
        logger.warn({ err: error, channel }, "notification connection lost");
        taken.off("notification", notify);
        taken.release(error);
        connection = undefined;
      });
      await taken.query(`LISTEN ${channel}`);
      return taken;
    } catch (error) {
      logger.warn({ err: error, channel }, "cannot listen for notifications; subscribers poll");
      client?.release(error as Error);
      connection = undefined;
      return undefined;
    }
  };

  const unlisten = async () => {
    const pending = connection;
    connection = undefined;
    const client = await pending;
    if (!client) return;
    client.off("notification", notify);
    await client.query(`UNLISTEN ${channel}`).then(
      () => client.release(),
      (error: Error) => client.release(error),
    );
  };

  return {
    subscribe(onNotify) {
      subscribers.add(onNotify);
      connection ??= listen();
      return () => {
        subscribers.delete(onNotify);
        if (subscribers.size === 0) void unlisten();
      };
    },
    async close() {
      subscribers.clear();
      await unlisten();
    },
  };
}
