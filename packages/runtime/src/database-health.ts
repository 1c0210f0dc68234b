import type { Logger } from "@rdm/observability";
import type pg from "pg";

export interface DatabaseWatch {
  /** Whether the last probe reached the database. */
  readonly available: boolean;
  stop(): void;
}

export interface DatabaseWatchOptions {
  /** The pause between a probe's end and the next one (default 500 ms). */
  intervalMs?: number;
  /** A probe that takes longer counts as a failure (default 2000 ms). */
  timeoutMs?: number;
  logger: Logger;
  /** Called on each change of availability (not for the first, available, state). */
  onChange?(available: boolean): void;
}

/**
 * Probes the database with `SELECT 1` on a timer and reports when it goes away and comes back,
 * so health checks can say not ready meanwhile, at once, even while the server hangs. The pool
 * reconnects by itself; this only watches. A server that stops answering just after a probe is
 * reported by the next one's timeout: within intervalMs + timeoutMs, 2.5 s by default (the README
 * promises NOT_SERVING within 3 s).
 */
export function watchDatabase(pool: pg.Pool, options: DatabaseWatchOptions): DatabaseWatch {
  const intervalMs = options.intervalMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 2000;
  let available = true;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const probe = async (): Promise<Error | undefined> => {
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = new Promise<Error>((resolve) => {
      timeout = setTimeout(() => resolve(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([
        pool.query("SELECT 1").then(
          () => undefined,
          (error: Error) => error,
        ),
        timedOut,
      ]);
    } finally {
      clearTimeout(timeout);
    }
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
    },
  };
}
