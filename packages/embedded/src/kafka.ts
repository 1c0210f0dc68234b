import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { howItEnded, launch } from "./launcher.js";

export interface MockKafkaOptions {
  /** Number of mock brokers (default 1). */
  brokers?: number;
  /** Topics to create up front; others are auto-created on first use with 4 partitions. */
  topics?: { name: string; partitions: number }[];
  /** How long to wait for the launcher to report its address (default 15 s). */
  startTimeoutMs?: number;
}

export interface StartedMockKafka {
  /** e.g. ["127.0.0.1:39153"] */
  bootstrapServers: string[];
  /** Process id of the launcher (for diagnostics). */
  pid: number;
  /** Settles when the cluster has gone, stopped or not, with how its process ended. */
  exited: Promise<string>;
  stop(): Promise<void>;
}

/** Path of the compiled launcher script, for callers that run it themselves. */
export const kafkaMockLauncherPath = launcherPath();

function launcherPath(): string {
  const beside = fileURLToPath(new URL("./kafka-mock-process.js", import.meta.url));
  // When this module runs from src/ (tests transpile TypeScript on the fly), use the built launcher.
  return existsSync(beside) ? beside : fileURLToPath(new URL("../dist/kafka-mock-process.js", import.meta.url));
}

/**
 * Starts librdkafka's in-memory mock cluster in a child process and resolves once it listens.
 * The child exits on stop(), and also by itself when this process dies.
 */
export async function startMockKafka(options: MockKafkaOptions = {}): Promise<StartedMockKafka> {
  const args = JSON.stringify({ brokers: options.brokers ?? 1, topics: options.topics ?? [] });
  const launched = await launch<{ bootstrapServers?: string; error?: string }>(kafkaMockLauncherPath, [args], {
    name: "mock Kafka cluster",
    startTimeoutMs: options.startTimeoutMs ?? 15_000,
  });
  if (!launched.info.bootstrapServers) {
    await launched.stop();
    throw new Error("mock Kafka launcher reported no bootstrap servers");
  }
  return {
    bootstrapServers: launched.info.bootstrapServers.split(","),
    pid: launched.pid,
    exited: launched.exited.then(({ code, signal }) => howItEnded(code, signal)),
    stop: launched.stop,
  };
}
