import { DATABASE_URL_ENV, KAFKA_BROKERS_ENV, startTestServers, type TestServers } from "./servers.js";

declare global {
  var __rdmTestServers: TestServers | undefined;
}

/**
 * Jest globalSetup: starts PostgreSQL and a Kafka-protocol broker once per run and hands their
 * addresses to the workers through RDM_TEST_DATABASE_URL / RDM_TEST_KAFKA_BROKERS.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const servers = await startTestServers();
  globalThis.__rdmTestServers = servers;
  process.env[DATABASE_URL_ENV] = servers.databaseUrl;
  process.env[KAFKA_BROKERS_ENV] = servers.kafkaBrokers.join(",");
  process.stderr.write(
    `\n@rdm/testkit: PostgreSQL (${servers.sources.postgres}) ${redact(servers.databaseUrl)}, ` +
      `Kafka (${servers.sources.kafka}) ${servers.kafkaBrokers.join(",")} ready in ${Date.now() - started} ms\n`,
  );
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.toString();
}
