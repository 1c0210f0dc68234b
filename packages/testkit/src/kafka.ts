import { ensureTestServers } from "./fallback.js";
import { KAFKA_BROKERS_ENV, parseBrokers } from "./servers.js";

/**
 * Bootstrap servers of the shared test Kafka-protocol broker. Topics auto-create with 4
 * partitions; use a unique topic name per test.
 */
export async function testKafkaBrokers(): Promise<string[]> {
  const fromEnv = process.env[KAFKA_BROKERS_ENV];
  if (fromEnv) return parseBrokers(fromEnv);
  return (await ensureTestServers()).kafkaBrokers;
}
