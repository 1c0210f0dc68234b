import { uniqueId, untilGroupCaughtUp } from "@rdm/testkit";
import type pg from "pg";
import { type ChunkHandler, type CloudEvent, HANDLED_EVENTS_TABLE, publishEvents } from "../src/index.js";
import { cloudEvent, fixture, recordEffect, WAIT } from "./fixture.js";

/** Events a handler was given that its consumer does not accept: there must be none. */
const misdelivered: string[] = [];
const onlyWanted = async (event: CloudEvent, tx: pg.PoolClient) => {
  if (event.type !== "test.Wanted") {
    misdelivered.push(event.id);
    throw new Error(`handler given ${event.type}`);
  }
  await recordEffect(event, tx);
};
const onlyWantedChunk: ChunkHandler = async (events, tx) => {
  for (const { event } of events) await onlyWanted(event, tx);
};

describe("startConsumer with accepts", () => {
  it.each([
    ["event by event", {}],
    ["with a chunk handler", { handleChunk: onlyWantedChunk }],
  ])(
    "passes by the events it does not accept, without a handled-marker; applies the others once (%s)",
    async (_, extra) => {
      const f = await fixture();
      const key = uniqueId("agg");
      // Runs of both kinds: a fetch of only passed-by events, and mixed ones.
      const kinds = [..."OOOOWOWWOOOWOOOOOOOW"];
      const events = kinds.map((k) => cloudEvent(k === "W" ? "test.Wanted" : "test.Other", key));
      const wanted = events.filter((e) => e.type === "test.Wanted");
      await publishEvents(f.producer, f.topic, events);
      await f.start(onlyWanted, { ...extra, accepts: (event) => event.type === "test.Wanted" });

      await untilGroupCaughtUp(f.kafka, f.groupId, f.topic, WAIT);
      expect(misdelivered).toEqual([]);
      expect((await f.effects()).map((e) => e.event_id)).toEqual(wanted.map((e) => e.id));
      const { rows } = await f.pool.query(`SELECT event_id FROM ${HANDLED_EVENTS_TABLE} ORDER BY "offset"`);
      expect(rows.map((r) => r.event_id)).toEqual(wanted.map((e) => e.id));
    },
  );
});

describe("startConsumer with wanted", () => {
  it.each([
    ["event by event", {}],
    ["with a chunk handler", { handleChunk: onlyWantedChunk }],
  ])(
    "while it answers false events pass by unmarked; when it fails they are handled as usual (%s)",
    async (_, extra) => {
      const f = await fixture();
      const key = uniqueId("agg");
      let answer: () => Promise<boolean> = async () => false;
      await f.start(onlyWanted, { ...extra, wanted: () => answer() });
      const passedBy = Array.from({ length: 7 }, () => cloudEvent("test.Wanted", key));
      await publishEvents(f.producer, f.topic, passedBy.slice(0, 1));
      await publishEvents(f.producer, f.topic, passedBy.slice(1));
      await untilGroupCaughtUp(f.kafka, f.groupId, f.topic, WAIT);
      expect(await f.effects()).toEqual([]);
      expect((await f.pool.query(`SELECT 1 FROM ${HANDLED_EVENTS_TABLE}`)).rowCount).toBe(0);

      answer = () => Promise.reject(new Error("cannot tell"));
      const handled = Array.from({ length: 5 }, () => cloudEvent("test.Wanted", key));
      await publishEvents(f.producer, f.topic, handled);
      await untilGroupCaughtUp(f.kafka, f.groupId, f.topic, WAIT);
      expect((await f.effects()).map((e) => e.event_id)).toEqual(handled.map((e) => e.id));
      const { rows } = await f.pool.query(`SELECT event_id FROM ${HANDLED_EVENTS_TABLE} ORDER BY "offset"`);
      expect(rows.map((r) => r.event_id)).toEqual(handled.map((e) => e.id));
    },
  );
});
