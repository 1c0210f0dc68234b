import { randomUUID } from "node:crypto";
import { createLogger } from "@rdm/observability";
import { createTestDatabase, testKafkaBrokers, uniqueId } from "@rdm/testkit";
import type { Consumer, Kafka, KafkaMessage, Producer } from "kafkajs";
import pg from "pg";
import {
  type CloudEvent,
  type ConsumerOptions,
  createKafka,
  createProducer,
  type EventHandler,
  type RunningConsumer,
  startConsumer,
} from "../src/index.js";

const logger = createLogger("messaging-test", process.env.LOG_LEVEL ?? "error");
export const WAIT = { timeoutMs: 30_000 };

/** Everything one test owns: a fresh database, its own topics and group, and what to clean up. */
export interface Fixture {
  pool: pg.Pool;
  kafka: Kafka;
  producer: Producer;
  topic: string;
  deadLetterTopic: string;
  groupId: string;
  start(handle: EventHandler, extra?: Partial<ConsumerOptions>): Promise<RunningConsumer>;
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

export async function fixture(): Promise<Fixture> {
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
        // The mock broker makes a joining member wait about one session timeout after another left.
        sessionTimeoutMs: 6_000,
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
      const watcher: Consumer = kafka.consumer({ groupId: uniqueId("dlq-watcher"), maxWaitTimeInMs: 500 });
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

export function cloudEvent(type: string, subject: string, data = "payload"): CloudEvent {
  return {
    id: randomUUID(),
    type,
    source: "rdm/test",
    subject,
    time: new Date(),
    data: new TextEncoder().encode(data),
  };
}

/** The effect every test handler applies: one row per call, no uniqueness, so duplicates would show. */
export const recordEffect = async (event: CloudEvent, tx: pg.PoolClient) => {
  await tx.query("INSERT INTO effects (event_id, subject) VALUES ($1, $2)", [event.id, event.subject]);
};

/** The chunk handlers' effect: recordEffect's rows for all the events given, in one statement. */
export const recordEffects = async (events: CloudEvent[], tx: pg.PoolClient) => {
  await tx.query(
    `INSERT INTO effects (event_id, subject)
     SELECT e.id, e.subject FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS e(id, subject, n) ORDER BY e.n`,
    [events.map((e) => e.id), events.map((e) => e.subject)],
  );
};

export const header = (message: KafkaMessage, name: string) => message.headers?.[name]?.toString();
