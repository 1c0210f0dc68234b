import { Kafka, logLevel } from "kafkajs";
import { type StartedMockKafka, startMockKafka } from "../src/index.js";

describe("startMockKafka", () => {
  let broker: StartedMockKafka;
  beforeAll(async () => {
    broker = await startMockKafka({ topics: [{ name: "precreated", partitions: 3 }] });
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it("serves kafkajs: produce, then consume in a consumer group", async () => {
    expect(broker.bootstrapServers[0]).toMatch(/^127\.0\.0\.1:\d+$/);
    const kafka = new Kafka({ brokers: broker.bootstrapServers, logLevel: logLevel.NOTHING });
    const topic = `roundtrip-${process.pid}-${Date.now()}`;
    const producer = kafka.producer({ allowAutoTopicCreation: true });
    await producer.connect();
    await producer.send({ topic, messages: [{ key: "k1", value: "hello" }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `g-${topic}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = new Promise<string>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => resolve(`${message.key?.toString()}=${message.value?.toString()}`),
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no message consumed within 20 s")), 20_000);
    });
    try {
      expect(await Promise.race([received, timeout])).toBe("k1=hello");
    } finally {
      clearTimeout(timer);
      await consumer.disconnect();
    }

    const admin = kafka.admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [topic, "precreated"] });
      const partitions = Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]));
      expect(partitions).toEqual({ [topic]: 4, precreated: 3 });
      const offsets = await admin.fetchOffsets({ groupId: `g-${topic}`, topics: [topic] });
      const committed = offsets[0]?.partitions.filter((p) => p.offset !== "-1") ?? [];
      // kafkajs commits on disconnect at the latest
      expect(committed.map((p) => p.offset)).toEqual(["1"]);
    } finally {
      await admin.disconnect();
    }
  });

  it("gives each cluster its own id and stops cleanly", async () => {
    const other = await startMockKafka();
    const describe = async (brokers: string[]) => {
      const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        return await admin.describeCluster();
      } finally {
        await admin.disconnect();
      }
    };
    const a = await describe(broker.bootstrapServers);
    const b = await describe(other.bootstrapServers);
    expect(a.clusterId).toMatch(/^mockCluster[0-9a-f]+$/);
    // No controller: kafkajs admin.createTopics (and idempotent producers) cannot work.
    expect(a.controller).toBe(0);
    expect(a.clusterId).not.toBe(b.clusterId);
    await other.stop();
    await expect(
      new Kafka({ brokers: other.bootstrapServers, logLevel: logLevel.NOTHING, retry: { retries: 0 } })
        .admin()
        .connect(),
    ).rejects.toThrow();
  });
});
