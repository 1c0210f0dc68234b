import { isConflict } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";

export interface Poller {
  /** Runs one round now (also used by tests); resolves with the number of items handled. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Runs `round` every `intervalMs` until stopped; a round that fails is logged and retried at
 * the next tick (a concurrent write as info, anything else as an error). Rounds never overlap,
 * and stop() waits for the one in flight, which `stopping()` tells to end early (a round of many
 * items, each of which may take long, stops between two).
 */
export function startPoller(
  name: string,
  intervalMs: number,
  round: (stopping: () => boolean) => Promise<number>,
  logger: Logger,
): Poller {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<number> = Promise.resolve(0);
  const next = () => round(() => stopped);
  const runOnce = () => {
    inFlight = inFlight.then(next, next).catch((error: Error) => {
      // A command the round appended met a concurrent one on the same stream: each item is
      // handled in its own transaction, which rolled back whole, so the next round takes it again.
      if (isConflict(error)) logger.info({ err: error, job: name }, `${name} round met a concurrent write`);
      else logger.error({ err: error, job: name }, `${name} round failed`);
      return 0;
    });
    return inFlight;
  };
  const tick = async () => {
    await runOnce();
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  timer = setTimeout(tick, 0);
  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
