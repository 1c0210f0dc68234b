import { EventStore, eventStoreMigrations, type NewEvent, runMigrations, withTransaction } from "@rdm/eventstore";
import { type CloudEvent, createKafka, fromKafkaMessage } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { createTestDatabase, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { type Consumer, Kafka, logLevel } from "kafkajs";
import pg from "pg";
import {
  type Relay,
  type RelayOptions,
  readRelayCheckpoint,
  relayMigrations,
  resetRelay,
  startRelay,
} from "../src/index.js";

const logger = createLogger("relay-test", process.env.LOG_LEVEL ?? "error");
const WAIT = { timeoutMs: 45_000 };
const SOURCE = "rdm/test";

interface Received {
  event: CloudEvent;
  partition: number;
  offset: string;
}

/** Everything one test owns: a fresh database, its own topic and consumer group. */
interface Fixture {
  pool: pg.Pool;
  store: EventStore;
  kafka: Kafka;
  topic: string;
  received: Received[];
  start(
    extra?: Partial<Pick<RelayOptions, "name" | "batchSize" | "maxBatchBytes" | "pollIntervalMs" | "lingerMs">>,
  ): Promise<Relay>;
  consume(): Promise<void>;
  /** Received event ids, each with how often it arrived. */
  counts(): Map<string, number>;
}

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  cleanups = [];
});

async function fixture(): Promise<Fixture> {
  const db = await createTestDatabase("relay");
  const pool = new pg.Pool({ connectionString: db.url, max: 24 });
  cleanups.push(async () => {
    await pool.end();
    await db.drop();
  });
  await runMigrations(pool, eventStoreMigrations);
  const kafka = createKafka({ brokers: await testKafkaBrokers(), clientId: uniqueId("relay-test"), logger });
  const topic = uniqueId("test.relay.events");
  const received: Received[] = [];
  const fx: Fixture = {
    pool,
    store: new EventStore(pool),
    kafka,
    topic,
    received,
    async start(extra = {}) {
      const relay = await startRelay({ pool, kafka, topic, source: SOURCE, logger, pollIntervalMs: 200, ...extra });
      cleanups.push(() => relay.stop());
      return relay;
    },
    async consume() {
      // The topic must exist before the consumer subscribes: ask for its metadata (auto-creates it).
      const admin = kafka.admin();
      await admin.connect();
      await waitFor(() => admin.fetchTopicMetadata({ topics: [topic] }).then(() => true), {
        ...WAIT,
        description: `topic ${topic}`,
      });
      await admin.disconnect();
      const consumer: Consumer = kafka.consumer({ groupId: uniqueId("relay-test-group"), maxWaitTimeInMs: 100 });
      await consumer.connect();
      cleanups.push(() => consumer.disconnect());
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message, partition }) => {
          received.push({ event: fromKafkaMessage(message), partition, offset: message.offset });
        },
      });
    },
    counts() {
      const counts = new Map<string, number>();
      for (const r of received) counts.set(r.event.id, (counts.get(r.event.id) ?? 0) + 1);
      return counts;
    },
  };
  return fx;
}

const event = (n: number, metadata: NewEvent["metadata"] = { actor: "tester" }): NewEvent => ({
  type: "rdm.test.v1.Happened",
  data: new Uint8Array([n % 256]),
  metadata,
});

/** Every stored event arrived exactly once, and each stream's events arrived in version order. */
async function expectExactlyOnceInOrder(fx: Fixture): Promise<void> {
  const stored = await fx.store.readAll();
  await waitFor(() => fx.received.length >= stored.length, {
    ...WAIT,
    description: `${stored.length} events on ${fx.topic} (have ${fx.received.length})`,
  });
  const counts = fx.counts();
  expect(counts.size).toBe(stored.length);
  const dups = fx.received
    .filter((r) => (counts.get(r.event.id) ?? 0) > 1)
    .map((r) => `${r.event.id.slice(0, 8)} p${r.partition}@${r.offset} ${r.event.extensions?.globalposition}`);
  expect(dups).toEqual([]);
  expect(fx.received).toHaveLength(stored.length);
  const byStream = new Map<string, string[]>();
  for (const e of stored) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), e.eventId]);
  const arrived = new Map<string, string[]>();
  for (const r of fx.received) arrived.set(r.event.subject, [...(arrived.get(r.event.subject) ?? []), r.event.id]);
  expect(arrived).toEqual(byStream);
}

test("16 concurrent writers while the relay runs: every event exactly once, per-stream order kept", async () => {
  const fx = await fixture();
  await fx.start({ batchSize: 50 });
  await fx.consume();
  const streams = Array.from({ length: 24 }, () => uniqueId("release"));
  let n = 0;
  const writer = async (w: number) => {
    for (let i = 0; i < 20; i++) {
      const stream = streams[(w * 7 + i * 5) % streams.length] as string;
      const events = Array.from({ length: 1 + (i % 3) }, () => event(n++));
      for (;;) {
        try {
          if (i % 3 === 0) {
            // Some transactions stay open a little after appending, so commits land out of position order.
            await withTransaction(fx.pool, async (client) => {
              await fx.store.appendToStream(stream, "any", events, { client });
              await client.query("SELECT pg_sleep(random() * 0.03)");
            });
          } else {
            await fx.store.appendToStream(stream, "any", events);
          }
          break;
        } catch (error) {
          if ((error as Error).name !== "WrongExpectedVersion") throw error;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
  await expectExactlyOnceInOrder(fx);
  const sample = fx.received[0]?.event;
  expect(sample).toMatchObject({ source: SOURCE, type: "rdm.test.v1.Happened" });
  expect(sample?.extensions).toMatchObject({ streamtype: "release", actor: "tester" });
  for (const r of fx.received) {
    expect(r.event.extensions?.streamversion).toMatch(/^\d+$/);
  }
});

test("a commit that finds the relay waiting is published at once, however long its linger", async () => {
  const fx = await fixture();
  await fx.start({ lingerMs: 600_000 });
  await fx.consume();
  for (let n = 1; n <= 3; n++) {
    await fx.store.appendToStream(uniqueId("release"), "no_stream", [event(n)]);
    await waitFor(() => fx.received.length === n, { timeoutMs: 30_000, description: `event ${n} on ${fx.topic}` });
  }
  await expectExactlyOnceInOrder(fx);
});

test("under a stream of commits the relay lingers: a few large batches, each event once and in order", async () => {
  const fx = await fixture();
  // Batches no second of commits fills (a full batch is followed at once by the next cycle).
  const relay = await fx.start({ lingerMs: 1000, batchSize: 100_000, maxBatchBytes: 64 * 1024 * 1024 });
  await fx.consume();
  const before = relay.batches;
  // Eight writers, each on its own stream, as fast as they go for three seconds: without a linger
  // the relay would cycle once every few milliseconds. Two events per commit, so every batch has
  // several: a one-event batch by design does not linger, and on a busy machine the relay keeps
  // pace with one-event commits (95 cycles in one CI run with one writer, 40 in another with eight).
  const until = Date.now() + 3000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      const stream = uniqueId("release");
      for (let version = 0; Date.now() < until; version += 2) {
        await fx.store.appendToStream(stream, version === 0 ? "no_stream" : version, [
          event(version),
          event(version + 1),
        ]);
      }
    }),
  );
  // Batches, not cycles: a cycle that finds nothing to publish does not linger, and an open
  // transaction in this database holds every later commit back, waking the relay for nothing at
  // each one.
  const batches = relay.batches - before;
  expect(batches).toBeGreaterThan(0);
  expect(batches).toBeLessThanOrEqual(12);
  await expectExactlyOnceInOrder(fx);
});

test("resetRelay under a stream of commits: the relay starts again from the start without waiting for the stream to end", async () => {
  const fx = await fixture();
  await fx.start({ lingerMs: 200 });
  await fx.consume();
  const stream = uniqueId("release");
  let version = 0;
  const append = () => fx.store.appendToStream(stream, version === 0 ? "no_stream" : version, [event(version++)]);
  while (fx.received.length < 20) await append();
  // Each cycle now finds commits waiting, so it follows the last at once: the checkpoint it kept
  // from its own advance must not outlive the reset.
  await resetRelay(fx.pool);
  const first = fx.received[0]?.event.id;
  const deadline = Date.now() + 20_000;
  while ((fx.counts().get(first as string) ?? 0) < 2) {
    if (Date.now() > deadline) throw new Error("the reset was not seen while commits kept coming");
    await append();
  }
  const stored = await fx.store.readAll();
  await waitFor(() => stored.every((e) => fx.counts().has(e.eventId)), { ...WAIT, description: "every event" });
});

test("a transaction that commits late with a lower position is published, not skipped", async () => {
  const fx = await fixture();
  const relay = await fx.start();
  await fx.consume();
  const first = await fx.store.appendToStream(uniqueId("early"), "no_stream", [event(0)]);
  await waitFor(() => fx.received.length === 1, { ...WAIT, description: "first event" });

  const held = await fx.pool.connect();
  cleanups.push(async () => held.release());
  await held.query("BEGIN");
  const lateStream = uniqueId("late");
  const late = await fx.store.appendToStream(lateStream, "no_stream", [event(1)], { client: held });
  const laterStreams = Array.from({ length: 5 }, () => uniqueId("later"));
  for (const s of laterStreams) {
    const r = await fx.store.appendToStream(s, "no_stream", [event(2)]);
    expect(r.positions[0]).toBeGreaterThan(late.positions[0] as number); // committed first, higher position
  }
  // The relay runs several cycles with the later events committed, and must not move past the open one.
  const cycles = relay.cycles;
  await waitFor(() => relay.cycles >= cycles + 3, { ...WAIT, description: "relay cycles" });
  const checkpoint = await readRelayCheckpoint(fx.pool);
  expect(checkpoint?.globalPosition).toBe(first.positions[0]);
  expect(fx.received).toHaveLength(1);

  await held.query("COMMIT");
  await waitFor(() => fx.received.length === 7, { ...WAIT, description: "late and later events" });
  expect(fx.received.map((r) => r.event.subject).sort()).toEqual(
    [fx.received[0]?.event.subject, lateStream, ...laterStreams].sort(),
  );
  await expectExactlyOnceInOrder(fx);
});

test("an event held back by an open transaction that appends nothing is published when that ends, without waiting for a poll", async () => {
  const fx = await fixture();
  // A poll interval far longer than the wait below: only the held-back re-read can deliver in time.
  const relay = await fx.start({ pollIntervalMs: 600_000 });
  await fx.consume();
  const blocker = await fx.pool.connect();
  cleanups.push(async () => blocker.release());
  await blocker.query("BEGIN");
  await blocker.query("SELECT pg_current_xact_id()"); // takes a transaction id: holds the snapshot xmin
  const stream = uniqueId("held");
  const cycles = relay.cycles;
  await fx.store.appendToStream(stream, "no_stream", [event(1)]); // commits and NOTIFYs while held back
  await waitFor(() => relay.cycles > cycles, { ...WAIT, description: "a relay cycle after the append" });
  expect(fx.received).toHaveLength(0); // the open transaction keeps it back
  await blocker.query("ROLLBACK"); // ends without a NOTIFY
  await waitFor(() => fx.received.length === 1, { ...WAIT, description: "the held-back event" });
  expect(fx.received[0]?.event.subject).toBe(stream);
});

test("while an open transaction holds commits back, each commit wakes the relay but its lag is counted about once a second", async () => {
  const fx = await fixture();
  // The relay's own connections, with their lag queries counted (a pooled client comes back
  // from connect() again: wrapped once).
  let lagCounts = 0;
  const wrapped = new WeakSet<pg.PoolClient>();
  const counting = new Proxy(fx.pool, {
    get(pool, property) {
      if (property !== "connect") {
        const value = Reflect.get(pool, property);
        return typeof value === "function" ? value.bind(pool) : value;
      }
      return async () => {
        const client = await pool.connect();
        if (wrapped.has(client)) return client;
        wrapped.add(client);
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        client.query = ((...args: unknown[]) => {
          if ((args[0] as { name?: string } | undefined)?.name === "rdm_relay_lag") lagCounts++;
          return query(...args);
        }) as typeof client.query;
        return client;
      };
    },
  });
  const relay = await startRelay({ pool: counting, kafka: fx.kafka, topic: fx.topic, source: SOURCE, logger });
  cleanups.push(() => relay.stop());
  await fx.consume();
  const blocker = await fx.pool.connect();
  cleanups.push(async () => blocker.release());
  await blocker.query("BEGIN");
  await blocker.query("SELECT pg_current_xact_id()");
  const [cycles, counted, startedAt] = [relay.cycles, lagCounts, Date.now()];
  const streams = Array.from({ length: 60 }, () => uniqueId("held"));
  for (const stream of streams) await fx.store.appendToStream(stream, "no_stream", [event(1)]);
  await waitFor(() => relay.cycles >= cycles + 20, { ...WAIT, description: "the relay woken by the commits" });
  const seconds = (Date.now() - startedAt) / 1000;
  // One count finds the events held back; then one a second keeps the gauge current.
  expect(lagCounts - counted).toBeLessThanOrEqual(2 + Math.ceil(seconds));
  expect(fx.received).toHaveLength(0);
  await blocker.query("ROLLBACK");
  await expectExactlyOnceInOrder(fx);
  expect(fx.received).toHaveLength(60);
});

test("stopping the relay mid-stream and starting another loses and duplicates nothing", async () => {
  const fx = await fixture();
  const streams = Array.from({ length: 10 }, () => uniqueId("release"));
  let writing = true;
  let written = 0;
  const writers = streams.map(async (stream) => {
    let version = 0;
    while (writing || version < 10) {
      await fx.store.appendToStream(stream, version === 0 ? "no_stream" : version, [event(version)]);
      version++;
      written++;
    }
  });
  const first = await fx.start({ batchSize: 7 });
  await fx.consume();
  await waitFor(async () => ((await readRelayCheckpoint(fx.pool))?.globalPosition ?? 0) > 30, {
    ...WAIT,
    description: "first relay published some events",
  });
  await first.stop();
  const stoppedAt = await readRelayCheckpoint(fx.pool);
  const writtenAtStop = written;
  await fx.start({ batchSize: 7 });
  await waitFor(() => written > writtenAtStop + 50, { ...WAIT, description: "more writes after the restart" });
  writing = false;
  await Promise.all(writers);
  expect(stoppedAt?.globalPosition).toBeLessThan((await fx.store.readAll()).at(-1)?.globalPosition ?? 0);
  await expectExactlyOnceInOrder(fx);
});

test("a second replica stands by and takes over when the active one stops", async () => {
  const fx = await fixture();
  const a = await fx.start({ name: "shared" });
  await waitFor(() => a.isLeader, { ...WAIT, description: "first relay active" });
  const b = await fx.start({ name: "shared" });
  await fx.consume();
  for (let i = 0; i < 5; i++) await fx.store.appendToStream(uniqueId("release"), "no_stream", [event(i)]);
  await waitFor(() => fx.received.length === 5, { ...WAIT, description: "events via the first relay" });
  expect(b.isLeader).toBe(false);
  await a.stop();
  await waitFor(() => b.isLeader, { ...WAIT, description: "standby takes over" });
  for (let i = 0; i < 5; i++) await fx.store.appendToStream(uniqueId("release"), "no_stream", [event(i)]);
  await expectExactlyOnceInOrder(fx);
});

test("a different Kafka cluster id, or resetRelay, re-publishes everything from the start", async () => {
  const fx = await fixture();
  const stream = uniqueId("release");
  for (let v = 0; v < 6; v++) await fx.store.appendToStream(stream, v || "no_stream", [event(v)]);
  const first = await fx.start();
  await fx.consume();
  await waitFor(() => fx.received.length === 6, { ...WAIT, description: "first publication" });
  await first.stop();
  const checkpoint = await readRelayCheckpoint(fx.pool);
  expect(checkpoint?.kafkaClusterId).toBeTruthy();

  // As if the checkpoint had been written against another (e.g. a restarted in-memory) cluster.
  await fx.pool.query("UPDATE relay_checkpoints SET kafka_cluster_id = 'some-earlier-cluster'");
  await fx.start();
  await waitFor(() => fx.received.length === 12, { ...WAIT, description: "re-publication after cluster change" });
  expect((await readRelayCheckpoint(fx.pool))?.kafkaClusterId).toBe(checkpoint?.kafkaClusterId);

  await resetRelay(fx.pool);
  await waitFor(() => fx.received.length === 18, { ...WAIT, description: "re-publication after resetRelay" });
  expect([...fx.counts().values()]).toEqual([3, 3, 3, 3, 3, 3]);
  // Consumers de-duplicate by id: the stream's order holds in every round.
  const versions = fx.received.map((r) => r.event.extensions?.streamversion);
  expect(versions).toEqual(["1", "2", "3", "4", "5", "6", "1", "2", "3", "4", "5", "6", "1", "2", "3", "4", "5", "6"]);
});

test("Kafka unreachable: the relay keeps retrying without crashing, stops cleanly, and loses nothing", async () => {
  const fx = await fixture();
  for (let i = 0; i < 3; i++) await fx.store.appendToStream(uniqueId("release"), "no_stream", [event(i)]);
  // A closed loopback port: connection refused at once.
  const nowhere = new Kafka({
    clientId: uniqueId("relay-test"),
    brokers: ["127.0.0.1:1"],
    connectionTimeout: 500,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const relay = await startRelay({
    pool: fx.pool,
    kafka: nowhere,
    topic: fx.topic,
    source: SOURCE,
    logger: createLogger("relay-test", "silent"), // the failures are expected here
    maxBackoffMs: 200,
  });
  await waitFor(() => relay.lastError, { ...WAIT, description: "a failed cycle" });
  expect(relay.isLeader).toBe(true);
  expect((await readRelayCheckpoint(fx.pool))?.globalPosition).toBe(0);
  await relay.stop();
  await fx.start();
  await fx.consume();
  await expectExactlyOnceInOrder(fx);
});

test("relay migrations are idempotent", async () => {
  const fx = await fixture();
  await runMigrations(fx.pool, relayMigrations);
  expect(await runMigrations(fx.pool, relayMigrations)).toEqual([]);
});
