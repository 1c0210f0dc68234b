import type { Logger } from "@rdm/observability";
import pg from "pg";

export interface DatabaseWatch {
  /** Whether the last probe reached the database. */
  readonly available: boolean;
  stop(): void;
}

/** The watch's own way to the database: one session, kept between probes. */
export interface ProbeSession {
  /** A trivial statement; resolves when the server answered. */
  query(): Promise<unknown>;
  /** Drops the session at once, without waiting for the server. */
  close(): void;
}

export interface DatabaseWatchOptions {
  /** The pause between a probe's end and the next one (default 500 ms). */
  intervalMs?: number;
  /** A probe that takes longer counts as a failure (default 2000 ms). */
  timeoutMs?: number;
  logger: Logger;
  /** Called on each change of availability (not for the first, available, state). */
  onChange?(available: boolean): void;
  /** Opens the probe's session (default: a connection with the pool's settings, outside the pool). */
  openSession?(): Promise<ProbeSession>;
}

/**
 * Probes the database with `SELECT 1` on a timer and reports when it goes away and comes back,
 * so health checks can say not ready meanwhile, at once, even while the server hangs. A server
 * that stops answering just after a probe is reported by the next one's timeout: within
 * intervalMs + timeoutMs, 2.5 s by default (the README promises NOT_SERVING within 3 s).
 *
 * The probe has a connection of its own rather than one of the pool's: a pool whose connections
 * are all busy (a burst of commands, a long rebuild) is a database that answers, and a probe
 * queued behind them would report it gone. A session lost meanwhile (a restarted server, an idle
 * timeout) is replaced within the same probe, so only a database that cannot be reached anew
 * counts as unavailable. The pool reconnects by itself; this only watches.
 */
export function watchDatabase(pool: pg.Pool, options: DatabaseWatchOptions): DatabaseWatch {
  const intervalMs = options.intervalMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 2000;
  const openSession = options.openSession ?? (() => ownConnection(pool, timeoutMs));
  let available = true;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let session: ProbeSession | undefined;
  const drop = () => {
    session?.close();
    session = undefined;
  };

  const reach = async (attempt: { abandoned: boolean }) => {
    const kept = session;
    if (kept) {
      try {
        await kept.query();
        return;
      } catch {
        // Lost since the last probe: try a new one before saying the database is gone (unless
        // this probe was given up or the watch stopped meanwhile, which closed it).
        if (session === kept) drop();
        if (attempt.abandoned || stopped) return;
      }
    }
    const opened = await openSession();
    if (attempt.abandoned || stopped) {
      opened.close();
      return;
    }
    session = opened;
    await opened.query();
  };

  const probe = async (): Promise<Error | undefined> => {
    const attempt = { abandoned: false };
    const failure = await failureWithin(reach(attempt), timeoutMs);
    if (failure) {
      attempt.abandoned = true;
      drop();
    }
    return failure;
  };

  const tick = async () => {
    const failure = await probe();
    if (stopped) return;
    if (available !== (failure === undefined)) {
      available = failure === undefined;
      if (failure) options.logger.error({ err: failure }, "database unavailable; reporting not ready");
      else options.logger.info("database available again; reporting ready");
      options.onChange?.(available);
    }
    timer = setTimeout(() => void tick(), intervalMs);
  };
  timer = setTimeout(() => void tick(), intervalMs);

  return {
    get available() {
      return available;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      drop();
    },
  };
}

/**
 * How `work` failed, or a timeout's error if it has not settled within `timeoutMs`; undefined if
 * it succeeded. The timeout gives way to input first (setImmediate runs after the event loop's
 * poll phase): after this process was paused (a long collection, SIGSTOP), its timers are due at
 * once, and an answer the server sent meanwhile must count before them.
 */
async function failureWithin(work: Promise<void>, timeoutMs: number): Promise<Error | undefined> {
  let timeout: NodeJS.Timeout | undefined;
  const timedOut = new Promise<Error>((resolve) => {
    const error = new Error(`no answer within ${timeoutMs} ms`);
    timeout = setTimeout(() => setImmediate(() => resolve(error)), timeoutMs);
  });
  try {
    return await Promise.race([
      work.then(
        () => undefined,
        (error: Error) => error,
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timeout);
  }
}

/** A connection with the pool's settings that gives up connecting after timeoutMs. */
async function ownConnection(pool: pg.Pool, timeoutMs: number): Promise<ProbeSession> {
  const client = new pg.Client({ ...pool.options, connectionTimeoutMillis: timeoutMs });
  // A lost connection fails the probe's query; the watch logs what that means.
  client.on("error", () => undefined);
  // Destroying the socket ends a session whose server hangs, where `end()` would wait for it.
  const close = () => client.connection.stream.destroy();
  try {
    await client.connect();
  } catch (error) {
    close();
    throw error;
  }
  return { query: () => client.query("SELECT 1"), close };
}
