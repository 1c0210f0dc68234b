import { uniqueId, waitFor } from "@rdm/testkit";
import { HANDLED_EVENTS_TABLE, publishEvents } from "../src/index.js";
import { cloudEvent, fixture, recordEffect, WAIT } from "./fixture.js";

describe("startConsumer: exactly-once effects", () => {
  it("applies a redelivered event (same ce_id) once", async () => {
    const f = await fixture();
    let calls = 0;
    await f.start(async (event, tx) => {
      calls++;
      await recordEffect(event, tx);
    });
    const key = uniqueId("agg");
    const once = cloudEvent("test.Valid", key);
    const after = cloudEvent("test.Valid", key);
    await publishEvents(f.producer, f.topic, [once]);
    await publishEvents(f.producer, f.topic, [once, after]);

    await waitFor(async () => (await f.effects()).some((e) => e.event_id === after.id), {
      ...WAIT,
      description: "the event after the duplicate handled",
    });
    expect((await f.effects()).map((e) => e.event_id)).toEqual([once.id, after.id]);
    expect(calls).toBe(2);
    const { rows } = await f.pool.query(`SELECT event_id FROM ${HANDLED_EVENTS_TABLE} WHERE consumer_group = $1`, [
      f.groupId,
    ]);
    expect(rows.map((r) => r.event_id).sort()).toEqual([once.id, after.id].sort());
  });

  it("applies every event exactly once when stopped mid-stream and resumed by a new consumer in the group", async () => {
    const f = await fixture();
    const events = Array.from({ length: 40 }, (_, i) => cloudEvent("test.Valid", `agg-${i % 8}`, `n${i}`));
    await publishEvents(f.producer, f.topic, events);

    // The first consumer handles 10 events; the 11th is in flight when stop() is called.
    let calls = 0;
    let inFlight!: () => void;
    const eleventhStarted = new Promise<void>((resolve) => {
      inFlight = resolve;
    });
    let releaseEleventh!: () => void;
    const eleventhReleased = new Promise<void>((resolve) => {
      releaseEleventh = resolve;
    });
    const first = await f.start(async (event, tx) => {
      calls++;
      if (calls === 11) {
        inFlight();
        await eleventhReleased;
      }
      await recordEffect(event, tx);
    });
    await eleventhStarted;
    const stopped = first.stop();
    releaseEleventh();
    await stopped;
    expect(await f.effects()).toHaveLength(11);

    const second = await f.start(recordEffect);
    await second.ready;
    await waitFor(async () => (await f.effects()).length >= 40, { ...WAIT, description: "all 40 effects" });
    const effects = await f.effects();
    expect(effects).toHaveLength(40);
    expect(new Set(effects.map((e) => e.event_id))).toEqual(new Set(events.map((e) => e.id)));
    // Per aggregate (= key = partition), effects are in publication order.
    for (let k = 0; k < 8; k++) {
      const subject = `agg-${k}`;
      expect(effects.filter((e) => e.subject === subject).map((e) => e.event_id)).toEqual(
        events.filter((e) => e.subject === subject).map((e) => e.id),
      );
    }
  });

  it("applies the events a fetch brought in shared transactions, in order, each once", async () => {
    const f = await fixture();
    const key = uniqueId("agg");
    const events = Array.from({ length: 30 }, (_, i) => cloudEvent("test.Valid", key, `n${i}`));
    await publishEvents(f.producer, f.topic, events);
    const transactions: string[] = [];
    await f.start(async (event, tx) => {
      transactions.push((await tx.query("SELECT txid_current()::text AS id")).rows[0].id);
      await recordEffect(event, tx);
    });
    await waitFor(async () => (await f.effects()).length === 30, { ...WAIT, description: "30 effects" });
    expect((await f.effects()).map((e) => e.event_id)).toEqual(events.map((e) => e.id));
    // One partition, fetched in a batch or a few: far fewer commits than events.
    expect(new Set(transactions).size).toBeLessThan(10);
  });

  it("retries an event in a transaction that has taken no id before its handler writes, and marks it once", async () => {
    const f = await fixture();
    const assigned: (string | null)[] = [];
    await f.start(async (event, tx) => {
      // What a command's stream lock relies on: its write is the transaction's first (see handleIn).
      assigned.push((await tx.query("SELECT pg_current_xact_id_if_assigned()::text AS id")).rows[0].id);
      if (assigned.length === 1) throw Object.assign(new Error("lost a race"), { name: "WrongExpectedVersion" });
      await recordEffect(event, tx);
    });
    const event = cloudEvent("test.Valid", uniqueId("agg"));
    await publishEvents(f.producer, f.topic, [event]);
    await waitFor(async () => (await f.effects()).length === 1, { ...WAIT, description: "the retry's effect" });
    // The first attempt, in a fetch's transaction, marked it first; the retry had written nothing.
    expect(assigned).toHaveLength(2);
    expect(assigned[1]).toBeNull();
    const { rows } = await f.pool.query(`SELECT event_id FROM ${HANDLED_EVENTS_TABLE} WHERE consumer_group = $1`, [
      f.groupId,
    ]);
    expect(rows.map((r) => r.event_id)).toEqual([event.id]);
  });

  it("resolves ready once it has joined its group", async () => {
    const f = await fixture();
    const consumer = await f.start(recordEffect);
    await expect(consumer.ready).resolves.toBeUndefined();
  });
});
