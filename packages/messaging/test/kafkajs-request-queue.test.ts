// kafkajs 2.2.4 re-checks an empty, unthrottled request queue every millisecond, forever, on every
// broker connection (tulios/kafkajs#1556): each process burned CPU and made garbage while idle.
// patches/kafkajs@2.2.4.patch stops it; these fail if the patch is not applied (an upgrade, say).
import { createRequire } from "node:module";

interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: unknown;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
  destroy(): void;
}

const RequestQueueClass = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as new (
  options: object,
) => RequestQueue;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const newQueue = () =>
  new RequestQueueClass({
    maxInFlightRequests: 1,
    requestTimeout: 30_000,
    clientId: "test",
    broker: "b:9092",
    logger: quiet,
  });

test("an idle queue schedules no check after an answered request", () => {
  const queue = newQueue();
  queue.checkPendingRequests(); // what every answered or timed-out request does
  expect(queue.throttleCheckTimeoutId).toBeNull();
  queue.destroy();
});

test("a throttled queue, or one with requests waiting, still schedules its check", () => {
  const throttled = newQueue();
  throttled.throttledUntil = Date.now() + 60_000;
  throttled.scheduleCheckPendingRequests();
  expect(throttled.throttleCheckTimeoutId).not.toBeNull();
  throttled.destroy();

  const waiting = newQueue();
  waiting.pending.push({});
  waiting.scheduleCheckPendingRequests();
  expect(waiting.throttleCheckTimeoutId).not.toBeNull();
  waiting.destroy();
});
