import { WrongExpectedVersion } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { startPoller } from "../src/poller.js";

/** The levels and messages the poller logged. */
function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (_fields: unknown, msg: string) => lines.push({ level, msg });
  const logger = { info: at("info"), warn: at("warn"), error: at("error") } as unknown as Logger;
  return { logger, lines };
}

test("a round stopped by a concurrent write is logged as info, any other failure as an error; rounds go on", async () => {
  const { logger, lines } = recordingLogger();
  const failures: Error[] = [new WrongExpectedVersion("s-1", 3, 5), new Error("connection refused")];
  let rounds = 0;
  const poller = startPoller(
    "deadlines",
    3_600_000,
    async () => {
      rounds++;
      const failure = failures.shift();
      if (failure) throw failure;
      return 1;
    },
    logger,
  );
  try {
    // Three rounds queued now, in order (the first tick's round comes after them).
    expect(await Promise.all([poller.runOnce(), poller.runOnce(), poller.runOnce()])).toEqual([0, 0, 1]);
    expect(rounds).toBeGreaterThanOrEqual(3);
    expect(lines).toEqual([
      { level: "info", msg: "deadlines round met a concurrent write" },
      { level: "error", msg: "deadlines round failed" },
    ]);
  } finally {
    await poller.stop();
  }
});

test("a round in flight is told the poller is stopping, so it can end between two items", async () => {
  const { logger } = recordingLogger();
  let release: () => void = () => undefined;
  const itemInFlight = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started: () => void = () => undefined;
  const roundStarted = new Promise<void>((resolve) => {
    started = resolve;
  });
  let items = 0;
  const poller = startPoller(
    "deliveries",
    3_600_000,
    async (stopping) => {
      started();
      // Many items, each one slow: stops after the one in flight.
      for (; items < 100 && !stopping(); items++) await itemInFlight;
      return items;
    },
    logger,
  );
  await roundStarted;
  const stopped = poller.stop();
  release();
  await stopped;
  expect(items).toBe(1);
});
