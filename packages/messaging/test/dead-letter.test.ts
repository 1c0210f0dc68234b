import { uniqueId, waitFor } from "@rdm/testkit";
import type { IHeaders, KafkaMessage } from "kafkajs";
import { DLQ_HEADERS, PermanentError, publishEvents, toKafkaMessage } from "../src/index.js";
import { cloudEvent, fixture, header, recordEffect, WAIT } from "./fixture.js";

describe("startConsumer: bad messages", () => {
  it("dead-letters poison messages with their reason and goes on with the valid ones after them", async () => {
    const f = await fixture();
    const calls = new Map<string, number>();
    await f.start(
      async (event, tx) => {
        calls.set(event.id, (calls.get(event.id) ?? 0) + 1);
        if (event.type === "test.Undecodable") throw new PermanentError("cannot decode test.Undecodable");
        if (event.type === "test.AlwaysFails") throw new Error("downstream unavailable");
        await recordEffect(event, tx);
      },
      { maxAttempts: 3 },
    );
    await f.watchDeadLetters();

    const key = uniqueId("agg");
    const a = cloudEvent("test.Valid", key, "a");
    const undecodable = cloudEvent("test.Undecodable", key);
    const b = cloudEvent("test.Valid", key, "b");
    const failing = cloudEvent("test.AlwaysFails", key);
    const c = cloudEvent("test.Valid", key, "c");
    // One request, so one record batch: a, headerless garbage, undecodable, b, failing, c.
    const [sent] = await f.producer.send({
      topic: f.topic,
      acks: -1,
      messages: [
        toKafkaMessage(a),
        { key, value: Buffer.from("not a cloudevent"), headers: { "x-origin": "kcat" } },
        toKafkaMessage(undecodable),
        toKafkaMessage(b),
        toKafkaMessage(failing),
        toKafkaMessage(c),
      ],
    });
    const base = Number(sent?.baseOffset);

    await waitFor(async () => (await f.effects()).length === 3 && f.deadLetters.length === 3, {
      ...WAIT,
      description: "3 effects and 3 dead letters",
    });
    expect((await f.effects()).map((e) => e.event_id)).toEqual([a.id, b.id, c.id]);

    const [garbage, permanent, exhausted] = f.deadLetters as [KafkaMessage, KafkaMessage, KafkaMessage];
    expect(header(garbage, DLQ_HEADERS.reason)).toBe("malformed");
    expect(header(garbage, DLQ_HEADERS.error)).toContain("missing CloudEvents headers");
    expect(garbage.key?.toString()).toBe(key);
    expect(garbage.value?.toString()).toBe("not a cloudevent");
    expect(header(garbage, "x-origin")).toBe("kcat");
    expect(header(garbage, DLQ_HEADERS.originalTopic)).toBe(f.topic);
    expect(header(garbage, DLQ_HEADERS.originalPartition)).toBe(String(sent?.partition));
    expect(header(garbage, DLQ_HEADERS.originalOffset)).toBe(String(base + 1));
    expect(header(garbage, DLQ_HEADERS.consumerGroup)).toBe(f.groupId);
    expect(header(garbage, DLQ_HEADERS.attempts)).toBe("0");

    expect(header(permanent, DLQ_HEADERS.reason)).toBe("permanent");
    expect(header(permanent, DLQ_HEADERS.error)).toBe("PermanentError: cannot decode test.Undecodable");
    expect(header(permanent, "ce_id")).toBe(undecodable.id);
    expect(header(permanent, DLQ_HEADERS.originalOffset)).toBe(String(base + 2));
    expect(header(permanent, DLQ_HEADERS.attempts)).toBe("1");
    expect(calls.get(undecodable.id)).toBe(1);

    expect(header(exhausted, DLQ_HEADERS.reason)).toBe("attempts_exhausted");
    expect(header(exhausted, DLQ_HEADERS.error)).toBe("Error: downstream unavailable");
    expect(header(exhausted, "ce_id")).toBe(failing.id);
    expect(header(exhausted, "ce_type")).toBe("test.AlwaysFails");
    expect(exhausted.value?.toString()).toBe("payload");
    expect(header(exhausted, DLQ_HEADERS.originalOffset)).toBe(String(base + 4));
    expect(header(exhausted, DLQ_HEADERS.attempts)).toBe("3");
    expect(calls.get(failing.id)).toBe(3);
  });

  it("dead-letters a message too large to copy whole without its value, saying its size, and goes on", async () => {
    const f = await fixture();
    await f.start(async (event, tx) => recordEffect(event, tx));
    await f.watchDeadLetters();
    const key = uniqueId("agg");
    // Near an event topic's 1 MiB limit: with the dead-letter headers a copy would pass a broker's default.
    const huge = Buffer.alloc(1_040_000, "x");
    const after = cloudEvent("test.Valid", key, "after");
    await f.producer.send({ topic: f.topic, acks: -1, messages: [{ key, value: huge }] });
    await publishEvents(f.producer, f.topic, [after]);
    await waitFor(async () => (await f.effects()).length === 1 && f.deadLetters.length === 1, {
      ...WAIT,
      description: "the huge message dead-lettered and the next one handled",
    });
    const [copy] = f.deadLetters as [KafkaMessage];
    expect([copy.value, header(copy, DLQ_HEADERS.valueOmitted), header(copy, DLQ_HEADERS.reason)]).toEqual([
      null,
      String(huge.length),
      "malformed",
    ]);
    expect((await f.effects()).map((e) => e.event_id)).toEqual([after.id]);
  });

  it("dead-letters records with null header values, a null ce_subject among them, and goes on", async () => {
    const f = await fixture();
    await f.start(async (event, tx) => recordEffect(event, tx));
    await f.watchDeadLetters();

    const key = uniqueId("agg");
    const valid = cloudEvent("test.Valid", key, "after");
    const nullSubject = toKafkaMessage(cloudEvent("test.Valid", key, "null subject"));
    // Kafka allows a header without a value (kcat -H name): the copy must keep it so, and be sent.
    const nulls = { "x-null": null, ce_subject: null } as unknown as IHeaders;
    await f.producer.send({
      topic: f.topic,
      acks: -1,
      messages: [
        { key, value: Buffer.from("not a cloudevent"), headers: { "x-null": null } as unknown as IHeaders },
        { ...nullSubject, headers: { ...nullSubject.headers, ...nulls } },
        toKafkaMessage(valid),
      ],
    });

    await waitFor(async () => (await f.effects()).length === 1 && f.deadLetters.length === 2, {
      ...WAIT,
      description: "the valid event handled after two dead letters",
    });
    expect((await f.effects()).map((e) => e.event_id)).toEqual([valid.id]);
    for (const copy of f.deadLetters) {
      expect(header(copy, DLQ_HEADERS.reason)).toBe("malformed");
      expect(copy.headers).toHaveProperty("x-null", null);
    }
    expect(f.deadLetters[1]?.headers).toHaveProperty("ce_subject", null);
  });

  it("handles an event exactly once when the handler fails transiently once, then succeeds", async () => {
    const f = await fixture();
    const calls = new Map<string, number>();
    await f.start(async (event, tx) => {
      const n = (calls.get(event.id) ?? 0) + 1;
      calls.set(event.id, n);
      // The effect is written before the failure: the rollback must undo it.
      await recordEffect(event, tx);
      if (event.type === "test.FlakyOnce" && n === 1) throw new Error("connection reset");
      if (event.type === "test.Undecodable") throw new PermanentError("sentinel");
    });
    await f.watchDeadLetters();

    const key = uniqueId("agg");
    const flaky = cloudEvent("test.FlakyOnce", key);
    const sentinel = cloudEvent("test.Undecodable", key);
    await publishEvents(f.producer, f.topic, [flaky, sentinel]);

    // Same key, so the sentinel is dead-lettered after the flaky event was settled; had the
    // flaky event been dead-lettered, it would be on the dead-letter topic before the sentinel.
    await waitFor(() => f.deadLetters.length >= 1, { ...WAIT, description: "the sentinel dead-lettered" });
    expect(f.deadLetters.map((m) => header(m, "ce_id"))).toEqual([sentinel.id]);
    expect(calls.get(flaky.id)).toBe(2);
    expect((await f.effects()).map((e) => e.event_id)).toEqual([flaky.id]);
  });

  it("keeps retrying, without using up attempts, while the database refuses writes (a standby in a failover)", async () => {
    const f = await fixture();
    const calls = new Map<string, number>();
    await f.start(
      async (event, tx) => {
        const n = (calls.get(event.id) ?? 0) + 1;
        calls.set(event.id, n);
        // The first four tries meet a read-only database (SQLSTATE 25006), more than maxAttempts.
        if (event.type === "test.DuringFailover" && n <= 4) await tx.query("SET TRANSACTION READ ONLY");
        if (event.type === "test.Undecodable") throw new PermanentError("sentinel");
        await recordEffect(event, tx);
      },
      { maxAttempts: 2 },
    );
    await f.watchDeadLetters();

    const key = uniqueId("agg");
    const during = cloudEvent("test.DuringFailover", key);
    const sentinel = cloudEvent("test.Undecodable", key);
    await publishEvents(f.producer, f.topic, [during, sentinel]);

    // Same key: the sentinel is dead-lettered only after the first event was settled.
    await waitFor(() => f.deadLetters.length >= 1, { ...WAIT, description: "the sentinel dead-lettered" });
    expect(f.deadLetters.map((m) => header(m, "ce_id"))).toEqual([sentinel.id]);
    expect(calls.get(during.id)).toBe(5);
    expect((await f.effects()).map((e) => e.event_id)).toEqual([during.id]);
  });

  it("dead-letters at once an event whose data PostgreSQL refuses (SQLSTATE class 22), then goes on", async () => {
    const f = await fixture();
    const calls = new Map<string, number>();
    await f.start(async (event, tx) => {
      calls.set(event.id, (calls.get(event.id) ?? 0) + 1);
      // The projection's columns are typed: a subject that is not a uuid can never be stored.
      if (event.type === "test.BadSubject") await tx.query("SELECT $1::uuid", [event.subject]);
      await recordEffect(event, tx);
    });
    await f.watchDeadLetters();

    const key = uniqueId("agg");
    const bad = cloudEvent("test.BadSubject", key);
    const good = cloudEvent("test.Valid", key, "after");
    await publishEvents(f.producer, f.topic, [bad, good]);

    await waitFor(async () => (await f.effects()).length === 1 && f.deadLetters.length === 1, {
      ...WAIT,
      description: "the valid event handled and the bad one dead-lettered",
    });
    const [dead] = f.deadLetters as [KafkaMessage];
    expect(header(dead, "ce_id")).toBe(bad.id);
    expect(header(dead, DLQ_HEADERS.reason)).toBe("permanent");
    expect(header(dead, DLQ_HEADERS.error)).toContain("invalid input syntax for type uuid");
    expect(header(dead, DLQ_HEADERS.attempts)).toBe("1");
    expect(calls.get(bad.id)).toBe(1);
    expect((await f.effects()).map((e) => e.event_id)).toEqual([good.id]);
  });
});
