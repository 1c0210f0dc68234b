import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { createTestDatabase, testConsumerTimings, testKafkaBrokers, uniqueId, waitFor } from "../src/index.js";

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe("createTestDatabase", () => {
  it("gives each caller its own empty database and drops it", async () => {
    const [a, b] = await Promise.all([createTestDatabase("iso"), createTestDatabase("iso")]);
    try {
      expect(a.url).not.toBe(b.url);
      await withClient(a.url, (c) => c.query("CREATE TABLE only_in_a (v int)"));
      const inB = await withClient(b.url, (c) =>
        c.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'only_in_a'"),
      );
      expect(inB.rows[0].n).toBe(0);
      const names = await withClient(a.url, (c) => c.query("SELECT current_database() AS db"));
      expect(names.rows[0].db).toMatch(/^iso_/);
    } finally {
      await b.drop();
    }
    // drop() also closes connections that are still open
    const lingering = new pg.Client({ connectionString: a.url });
    lingering.on("error", () => undefined);
    await lingering.connect();
    await a.drop();
    await a.drop(); // idempotent
    await expect(withClient(a.url, (c) => c.query("SELECT 1"))).rejects.toThrow(/does not exist/);
    await lingering.end().catch(() => undefined);
  });

  it("waits for a session that ends while it drops instead of terminating it", async () => {
    // A pg Pool's end() resolves before its sessions have ended; a forced drop then terminated
    // them, and the pool, without an error listener, threw an unhandled error into the test.
    const db = await createTestDatabase("ending");
    const ending = new pg.Client({ connectionString: db.url });
    const errors: Error[] = [];
    ending.on("error", (error) => errors.push(error));
    await ending.connect();
    const dropped = db.drop();
    const dropWaiting = async () =>
      (
        await ending.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'DROP DATABASE%' AND query LIKE $1",
          [`%${db.url.split("/").pop()}%`],
        )
      ).rows[0]?.n === 1;
    await waitFor(dropWaiting, { description: "the drop waiting for the session" });
    await ending.end();
    await dropped;
    expect(errors).toEqual([]);
    await expect(withClient(db.url, (c) => c.query("SELECT 1"))).rejects.toThrow(/does not exist/);
  });

  it("accepts prefixes that are not identifiers", async () => {
    const db = await createTestDatabase("Release Service/v2!");
    try {
      const r = await withClient(db.url, (c) => c.query("SELECT current_database() AS db"));
      expect(r.rows[0].db).toMatch(/^release_service_v2_[a-z0-9_]+$/);
    } finally {
      await db.drop();
    }
  });
});

describe("testKafkaBrokers", () => {
  it("round-trips a message through a consumer group", async () => {
    const brokers = await testKafkaBrokers();
    expect(brokers.length).toBeGreaterThan(0);
    const kafka = new Kafka({ clientId: "testkit-test", brokers, logLevel: logLevel.NOTHING });
    const topic = uniqueId("testkit-roundtrip");
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: "k", value: "v1" }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: uniqueId("testkit-group"), ...testConsumerTimings });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
      await waitFor(() => seen.length > 0, { timeoutMs: 20_000, description: "the produced message" });
      expect(seen).toEqual(["v1"]);
    } finally {
      await consumer.disconnect();
    }
  });

  it("lets a restarted member of a group resume after its committed offset, quickly with testConsumerTimings", async () => {
    const kafka = new Kafka({
      clientId: "testkit-test",
      brokers: await testKafkaBrokers(),
      logLevel: logLevel.NOTHING,
    });
    const topic = uniqueId("testkit-rejoin");
    const groupId = uniqueId("testkit-group");
    const producer = kafka.producer();
    await producer.connect();
    const consumeOnce = async (): Promise<string[]> => {
      const seen: string[] = [];
      const consumer = kafka.consumer({ groupId, ...testConsumerTimings });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
        await waitFor(() => seen.length > 0, { timeoutMs: 15_000, description: `a message in group ${groupId}` });
        return seen;
      } finally {
        await consumer.disconnect();
      }
    };
    try {
      await producer.send({ topic, messages: [{ key: "k", value: "first" }] });
      expect(await consumeOnce()).toEqual(["first"]);
      await producer.send({ topic, messages: [{ key: "k", value: "second" }] });
      const started = Date.now();
      expect(await consumeOnce()).toEqual(["second"]);
      // sessionTimeout 6 s -> the mock holds the rejoin ~5 s (30 s defaults would hold it ~29 s; the
      // bound leaves room for a loaded machine)
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await producer.disconnect();
    }
  });
});

describe("waitFor", () => {
  it("resolves with the first truthy value, retrying through errors", async () => {
    let n = 0;
    const value = await waitFor(
      () => {
        n++;
        if (n < 3) throw new Error("not yet");
        return n >= 4 ? { n } : null;
      },
      { intervalMs: 1 },
    );
    expect(value).toEqual({ n: 4 });
  });

  it("fails with the description and the last error", async () => {
    await expect(
      waitFor(
        () => {
          throw new Error("still broken");
        },
        { timeoutMs: 100, intervalMs: 10, description: "the impossible" },
      ),
    ).rejects.toThrow(/waiting for the impossible; last error: still broken/);
  });

  it("bounds an attempt that never settles", async () => {
    const started = Date.now();
    await expect(waitFor(() => new Promise<boolean>(() => undefined), { timeoutMs: 200 })).rejects.toThrow(
      /Timed out after 200 ms/,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe("uniqueId", () => {
  it("is unique and keeps the prefix", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => uniqueId("p")));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^p-[a-z0-9]+-[0-9a-f]{8}$/);
  });
});
