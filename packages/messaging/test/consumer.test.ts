import { randomUUID } from "node:crypto";
import { createLogger } from "@rdm/observability";
import { createTestDatabase, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import type { Consumer, Kafka, KafkaMessage, Producer } from "kafkajs";
import pg from "pg";
import {
  type CloudEvent,
  createKafka,
  createProducer,
  DLQ_HEADERS,
  type EventHandler,
  HANDLED_EVENTS_TABLE,
  PermanentError,
  publishEvents,
  type RunningConsumer,
  startConsumer,
} from "../src/index.js";

const logger = createLogger("messaging-test", process.env.LOG_LEVEL ?? "error");
const WAIT = { timeoutMs: 30_000 };

/** Everything one test owns: a fresh database, its own topics and group, and what to clean up. */
interface Fixture {
  pool: pg.Pool;
  kafka: Kafka;
  producer: Producer;
  topic: string;
  deadLetterTopic: string;
  groupId: string;
  start(handle: EventHandler, extra?: { maxAttempts?: number }): Promise<RunningConsumer>;
  /** Effects written by the handlers, in commit order. */
  effects(): Promise<{ event_id: string; subject: string }[]>;
  /** Messages that arrived on the dead-letter topic, in order (one key per test, so one partition). */
  deadLetters: KafkaMessage[];
  watchDeadLetters(): Promise<void>;
}

let cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function fixture(): Promise<Fixture> {
  const db = await createTestDatabase("messaging");
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  cleanups.push(async () => {
    await pool.end();
    await db.drop();
  });
  await pool.query("CREATE TABLE effects (seq bigserial PRIMARY KEY, event_id text NOT NULL, subject text NOT NULL)");
  const kafka = createKafka({ brokers: await testKafkaBrokers(), clientId: uniqueId("messaging-test"), logger });
  const producer = createProducer(kafka);
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  const topic = uniqueId("test.events");
  const deadLetterTopic = `${topic}.dlq`;
  const groupId = uniqueId("group");
  const deadLetters: KafkaMessage[] = [];

  return {
    pool,
    kafka,
    producer,
    topic,
    deadLetterTopic,
    groupId,
    deadLetters,
    async start(handle, extra = {}) {
      const consumer = await startConsumer({
        kafka,
        pool,
        groupId,
        topics: [topic],
        handle,
        deadLetterTopic,
        fromBeginning: true,
        retryBackoffMs: 5,
        logger,
        ...extra,
      });
      cleanups.push(() => consumer.stop());
      return consumer;
    },
    async effects() {
      const { rows } = await pool.query("SELECT event_id, subject FROM effects ORDER BY seq");
      return rows;
    },
    async watchDeadLetters() {
      const watcher: Consumer = kafka.consumer({ groupId: uniqueId("dlq-watcher") });
      cleanups.push(() => watcher.disconnect());
      await watcher.connect();
      await watcher.subscribe({ topic: deadLetterTopic, fromBeginning: true });
      await watcher.run({
        eachMessage: async ({ message }) => {
          deadLetters.push(message);
        },
      });
    },
  };
}

function cloudEvent(type: string, subject: string, data = "payload"): CloudEvent {
  return { id: randomUUID(), type, source: "rdm/test", subject, time: new Date(), data: new TextEncoder().encode(data) };
}

/** The effect every test handler applies: one row per call, no uniqueness, so duplicates would show. */
const recordEffect = async (event: CloudEvent, tx: pg.PoolClient) => {
  await tx.query("INSERT INTO effects (event_id, subject) VALUES ($1, $2)", [event.id, event.subject]);
};

const header = (message: KafkaMessage, name: string) => message.headers?.[name]?.toString();

describe("startConsumer", () => {
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
    const { toKafkaMessage } = await import("../src/index.js");
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

  it("resolves ready once it has joined its group", async () => {
    const f = await fixture();
    const consumer = await f.start(recordEffect);
    await expect(consumer.ready).resolves.toBeUndefined();
  });
});
