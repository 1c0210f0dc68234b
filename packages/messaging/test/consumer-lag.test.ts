// The consumer lag gauge as /metrics reports it: a message retried for long (its partition waiting
// on it) shows as lag, and the lag goes to 0 once the partition is caught up.
import { startTelemetry, type Telemetry } from "@rdm/observability";
import { uniqueId, waitFor } from "@rdm/testkit";
import { publishEvents } from "../src/index.js";
import { cloudEvent, fixture, recordEffect, WAIT } from "./fixture.js";

let telemetry: Telemetry;
beforeAll(async () => {
  telemetry = await startTelemetry({ serviceName: "messaging-lag", metrics: { host: "127.0.0.1", port: 0 } });
});
afterAll(() => telemetry.shutdown());

/** The lag /metrics reports for the group's one partition of `topic`, if any. */
async function lagOf(groupId: string, topic: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${telemetry.metricsPort}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("rdm_messaging_consumer_lag{") &&
        l.includes(`messaging_consumer_group_name="${groupId}"`) &&
        l.includes(`messaging_destination_name="${topic}"`),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("a message retried for long shows as lag until it and the ones behind it are handled", async () => {
  const f = await fixture();
  let blocked = true;
  let attempts = 0;
  await f.start(
    async (event, tx) => {
      if (event.type === "test.Blocked" && blocked) {
        attempts++;
        throw new Error("downstream unavailable");
      }
      await recordEffect(event, tx);
    },
    { maxAttempts: 1_000_000, retryBackoffMs: 20 },
  );
  const key = uniqueId("agg");
  // Handled first, so the gauge had a value (0) before the partition got stuck.
  await publishEvents(f.producer, f.topic, [cloudEvent("test.Valid", key)]);
  await waitFor(async () => (await f.effects()).length === 1, { ...WAIT, description: "the first event handled" });
  await waitFor(async () => (await lagOf(f.groupId, f.topic)) === 0, { ...WAIT, description: "lag 0" });

  await publishEvents(f.producer, f.topic, [cloudEvent("test.Blocked", key), cloudEvent("test.Valid", key)]);
  await waitFor(async () => attempts >= 3, { ...WAIT, description: "the blocked event retried" });
  // The blocked event and the one behind it.
  expect(await lagOf(f.groupId, f.topic)).toBe(2);

  blocked = false;
  await waitFor(async () => (await f.effects()).length === 3, { ...WAIT, description: "every event handled" });
  await waitFor(async () => (await lagOf(f.groupId, f.topic)) === 0, { ...WAIT, description: "lag 0 again" });
});
