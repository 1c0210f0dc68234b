// When a failed delivery is tried again (default webhook and subscriptions alike).
import { MAX_BACKOFF_MS, nextAttemptAt } from "../src/jobs/webhook-delivery.js";

test("the backoff doubles after each failed attempt and never passes an hour, however many attempts are allowed", () => {
  const now = new Date("2026-12-03T10:00:00Z");
  const waits = [1, 2, 3, 12, 100, 100_000].map(
    (attempts) => nextAttemptAt(now, 2_000, attempts).getTime() - now.getTime(),
  );
  expect(waits).toEqual([2_000, 4_000, 8_000, MAX_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
});
