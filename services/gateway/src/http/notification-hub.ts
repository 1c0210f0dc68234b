import type { Logger } from "@rdm/observability";
import type pg from "pg";

export interface NotificationHub {
  /** Calls `onNotify` on every NOTIFY of the channel until the returned function is called. */
  subscribe(onNotify: () => void): () => void;
  close(): Promise<void>;
}

/** A LISTEN connection, and the only way it goes back to the pool. */
interface Listener {
  client: pg.PoolClient;
  /** Takes our listeners off the client and releases it (destroyed after `error`); only the first call counts. */
  hangUp(error?: Error): void;
}

/** Takes a pooled connection and LISTENs on it; calls `lost` when the connection is gone. */
async function listen(
  pool: pg.Pool,
  channel: string,
  logger: Logger,
  notify: () => void,
  lost: () => void,
): Promise<Listener | undefined> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    logger.warn({ err: error, channel }, "cannot listen for notifications; subscribers poll");
    lost();
    return undefined;
  }
  const taken = client;
  let released = false;
  const hangUp = (error?: Error) => {
    if (released) return;
    released = true;
    // Pooled clients are reused: a listener left behind would act on someone else's checkout.
    taken.off("notification", notify);
    taken.off("error", onConnectionLost);
    taken.release(error);
  };
  // While we hold the client its errors are ours (the pool listens only to idle clients).
  const onConnectionLost = (error: Error) => {
    logger.warn({ err: error, channel }, "notification connection lost");
    hangUp(error);
    lost();
  };
  taken.on("notification", notify);
  taken.on("error", onConnectionLost);
  try {
    await taken.query(`LISTEN ${channel}`);
    return { client: taken, hangUp };
  } catch (error) {
    logger.warn({ err: error, channel }, "cannot listen for notifications; subscribers poll");
    hangUp(error as Error);
    lost();
    return undefined;
  }
}

/**
 * One LISTEN connection per channel, shared by every subscriber (an SSE client each), held
 * only while someone subscribes: a hundred dashboards cost one pooled connection, not a hundred.
 * A lost connection is logged and taken again on the next subscription; subscribers poll on a
 * timer as well, so a missed notification only delays them.
 */
export function createNotificationHub(pool: pg.Pool, channel: string, logger: Logger): NotificationHub {
  const subscribers = new Set<() => void>();
  let connection: Promise<Listener | undefined> | undefined;
  const notify = () => {
    for (const subscriber of subscribers) subscriber();
  };

  const startListening = () => {
    const listening: Promise<Listener | undefined> = listen(pool, channel, logger, notify, () => {
      // The next subscription listens anew; but a newer connection may have replaced this one already.
      if (connection === listening) connection = undefined;
    });
    return listening;
  };

  const unlisten = async () => {
    const pending = connection;
    connection = undefined;
    const listener = await pending;
    if (!listener) return;
    // The error listener stays until the release: the connection may break during UNLISTEN.
    await listener.client.query(`UNLISTEN ${channel}`).then(
      () => listener.hangUp(),
      (error: Error) => listener.hangUp(error),
    );
  };

  return {
    subscribe(onNotify) {
      subscribers.add(onNotify);
      connection ??= startListening();
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
