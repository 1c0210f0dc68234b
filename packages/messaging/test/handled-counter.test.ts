import { startTelemetry, type Telemetry } from "@rdm/observability";
import { uniqueId, waitFor } from "@rdm/testkit";
import { type CloudEvent, publishEvents } from "../src/index.js";
import { cloudEvent, fixture, recordEffect, recordEffects, WAIT } from "./fixture.js";

let telemetry: Telemetry;
beforeAll(async () => {
  telemetry = await startTelemetry({ serviceName: "messaging-test", metrics: { host: "127.0.0.1", port: 0 } });
});
afterAll(() => telemetry.shutdown());

/** The handled counter of `groupId` for `outcome`, as /metrics serves it (0 when absent). */
async function handled(groupId: string, outcome: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${telemetry.metricsPort}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("rdm_messaging_consumer_handled_total{") &&
        l.includes(`messaging_consumer_group_name="${groupId}"`) &&
        l.includes(`outcome="${outcome}"`),
    );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

describe("startConsumer: the handled counter", () => {
  it("counts each message of a chunk once, by outcome", async () => {
    const f = await fixture();
    const key = uniqueId("agg");
    const events = Array.from({ length: 7 }, (_, i) => cloudEvent("test.Valid", key, `n${i}`));
    // Two copies of one event in the same fetch: the second is a duplicate.
    await publishEvents(f.producer, f.topic, [...events, events[3] as CloudEvent]);
    await f.start(recordEffect, {
      handleChunk: (given, tx) =>
        recordEffects(
          given.map(({ event }) => event),
          tx,
        ),
    });
    await waitFor(async () => (await handled(f.groupId, "handled")) + (await handled(f.groupId, "duplicate")) >= 8, {
      ...WAIT,
      description: "eight messages counted",
    });
    expect(await handled(f.groupId, "handled")).toBe(7);
    expect(await handled(f.groupId, "duplicate")).toBe(1);
    expect((await f.effects()).length).toBe(7);
  });
});
