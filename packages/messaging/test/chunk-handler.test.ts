import { uniqueId, waitFor } from "@rdm/testkit";
import type { KafkaMessage } from "kafkajs";
import { type ChunkHandler, type CloudEvent, PermanentError, publishEvents } from "../src/index.js";
import { cloudEvent, fixture, header, recordEffect, recordEffects, WAIT } from "./fixture.js";

describe("startConsumer with a chunk handler", () => {
  it("applies a fetch's events at once, in order, each once, a repeated one and one handled before skipped", async () => {
    const f = await fixture();
    const key = uniqueId("agg");
    const events = Array.from({ length: 30 }, (_, i) => cloudEvent("test.Valid", key, `n${i}`));
    const [handledBefore] = events;
    // A relay that published an event twice: the copy comes right after it, in the same fetch.
    const withRepeat = [...events.slice(0, 10), events[9] as CloudEvent, ...events.slice(10)];
    const chunks: number[] = [];
    const handleChunk: ChunkHandler = async (given, tx) => {
      chunks.push(given.length);
      await recordEffects(
        given.map(({ event }) => event),
        tx,
      );
    };
    const first = await f.start(recordEffect);
    await publishEvents(f.producer, f.topic, [handledBefore as CloudEvent]);
    await waitFor(async () => (await f.effects()).length === 1, { ...WAIT, description: "the first event" });
    await first.stop();

    await publishEvents(f.producer, f.topic, [handledBefore as CloudEvent, ...withRepeat]);
    await f.start(recordEffect, { handleChunk });
    await waitFor(async () => (await f.effects()).length >= 30, { ...WAIT, description: "30 effects" });
    expect((await f.effects()).map((e) => e.event_id)).toEqual(events.map((e) => e.id));
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.length).toBeLessThan(10);
  });

  it("goes through a failed chunk message by message: the bad one dead-lettered, every other applied once", async () => {
    const f = await fixture();
    await f.watchDeadLetters();
    const key = uniqueId("agg");
    const events = Array.from({ length: 20 }, (_, i) => cloudEvent(i === 12 ? "test.Poison" : "test.Valid", key));
    const poison = events[12] as CloudEvent;
    const refuse = (event: CloudEvent) => {
      if (event.type === "test.Poison") throw new PermanentError("cannot apply test.Poison");
    };
    await publishEvents(f.producer, f.topic, events);
    await f.start(
      async (event, tx) => {
        refuse(event);
        await recordEffect(event, tx);
      },
      {
        handleChunk: async (given, tx) => {
          for (const { event } of given) refuse(event);
          await recordEffects(
            given.map(({ event }) => event),
            tx,
          );
        },
      },
    );
    await waitFor(async () => f.deadLetters.length === 1 && (await f.effects()).length >= 19, {
      ...WAIT,
      description: "19 effects and the dead letter",
    });
    expect((await f.effects()).map((e) => e.event_id)).toEqual(events.filter((e) => e !== poison).map((e) => e.id));
    expect(header(f.deadLetters[0] as KafkaMessage, "ce_id")).toBe(poison.id);
  });
});
