import type { Kafka } from "kafkajs";
import { ensureTestServers } from "./fallback.js";
import { KAFKA_BROKERS_ENV, parseBrokers } from "./servers.js";
import { uniqueId, type WaitForOptions, waitFor } from "./wait.js";

/**
 * Bootstrap servers of the shared test Kafka-protocol broker. Topics auto-create with 4
 * partitions; use a unique topic name per test.
 */
export async function testKafkaBrokers(): Promise<string[]> {
  const fromEnv = process.env[KAFKA_BROKERS_ENV];
  if (fromEnv) return parseBrokers(fromEnv);
  return (await ensureTestServers()).kafkaBrokers;
}

/**
 * Consumer group timings for tests. librdkafka's mock cluster (like a broker) holds a rejoining
 * group for `sessionTimeout - 1 s` after a member leaves, so kafkajs's 30 s default makes a
 * restarted consumer wait ~29 s; with these it waits ~5 s. A brand-new group always waits ~3 s
 * (the initial rebalance delay). Spread into `kafka.consumer({ groupId, ...testConsumerTimings })`.
 */
export const testConsumerTimings = { sessionTimeout: 6000, heartbeatInterval: 500 } as const;

/**
 * A `KAFKA_TOPIC_PREFIX` of one test file's own. Test files share the broker and run in
 * parallel: with its own topics, a file's services and gateways read only its own events, so a
 * new consumer does not replay (or race with) every other file's releases and changes.
 */
export const testTopicPrefix = (label: string): string => `${uniqueId(label)}.`;

/**
 * Until consumer group `groupId` has committed, on every partition of `topic`, the offset after
 * the partition's last message: it has finished with everything published there so far.
 */
export async function untilGroupCaughtUp(
  kafka: Kafka,
  groupId: string,
  topic: string,
  options: WaitForOptions = {},
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await waitFor(
      async () => {
        const ends = await admin.fetchTopicOffsets(topic);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        const at = new Map(committed?.partitions.map((p) => [p.partition, p.offset]));
        return ends.every((end) => end.high === "0" || at.get(end.partition) === end.high);
      },
      { description: `group ${groupId} at the end of ${topic}`, ...options },
    );
  } finally {
    await admin.disconnect();
  }
}
