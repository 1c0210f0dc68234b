import { jest } from "@jest/globals";
import type { Logger } from "@rdm/observability";
import type pg from "pg";
import { watchDatabase } from "../src/database-health.js";

const quiet = { info: () => {}, error: () => {} } as unknown as Logger;

afterEach(() => {
  jest.useRealTimers();
});

test("a database that stops answering just after a probe is reported within 2.5 s, and its return within a probe", async () => {
  jest.useFakeTimers();
  let hanging = false;
  // A server that hangs keeps its sockets: the query neither answers nor fails.
  const pool = {
    query: () => (hanging ? new Promise(() => {}) : Promise.resolve({ rows: [{ "?column?": 1 }] })),
  } as unknown as pg.Pool;
  const changes: { at: number; available: boolean }[] = [];
  let since = Date.now();
  const watch = watchDatabase(pool, {
    logger: quiet,
    onChange: (available) => changes.push({ at: Date.now() - since, available }),
  });
  try {
    // Probes answered at 500 and 1,000 ms; the server stops right after the second one.
    await jest.advanceTimersByTimeAsync(1_000);
    expect(watch.available).toBe(true);
    hanging = true;
    since = Date.now();
    await jest.advanceTimersByTimeAsync(3_000);
    expect(changes).toEqual([{ at: 2_500, available: false }]);
    expect(watch.available).toBe(false);
    // Back: the probe still waiting on the frozen server times out first, then the next one answers.
    hanging = false;
    since = Date.now();
    await jest.advanceTimersByTimeAsync(3_000);
    expect(changes.at(-1)).toEqual({ at: expect.any(Number), available: true });
    expect(changes.at(-1)?.at).toBeLessThanOrEqual(2_500);
  } finally {
    watch.stop();
  }
});
