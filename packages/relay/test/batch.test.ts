import type { RecordedEvent } from "@rdm/eventstore";
import { takeBatch } from "../src/relay.js";

const KiB = 1024;
const event = (n: number, bytes: number): RecordedEvent => ({
  eventId: `e${n}`,
  type: "test.Event",
  data: new Uint8Array(bytes),
  metadata: {},
  streamId: "s",
  streamType: "s",
  version: n,
  globalPosition: n,
  transactionId: "1",
  recordedAt: new Date(0),
});
const ids = (events: RecordedEvent[]) => events.map((e) => e.eventId);

describe("takeBatch: what one Kafka request of the relay carries", () => {
  test("small events: the whole read", () => {
    const read = [event(1, 100 * KiB), event(2, 100 * KiB), event(3, 100 * KiB)];
    expect(ids(takeBatch(read, 512 * KiB))).toEqual(["e1", "e2", "e3"]);
  });

  test("large events: the longest prefix within the byte budget, order kept", () => {
    const read = [event(1, 300 * KiB), event(2, 300 * KiB), event(3, 10 * KiB)];
    expect(ids(takeBatch(read, 512 * KiB))).toEqual(["e1"]);
    expect(ids(takeBatch(read.slice(1), 512 * KiB))).toEqual(["e2", "e3"]);
  });

  test("an event above the budget still goes, alone", () => {
    expect(ids(takeBatch([event(1, 900 * KiB), event(2, 1)], 512 * KiB))).toEqual(["e1"]);
  });
});
