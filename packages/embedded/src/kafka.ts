import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

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
export function startMockKafka(options: MockKafkaOptions = {}): Promise<StartedMockKafka> {
  const args = JSON.stringify({ brokers: options.brokers ?? 1, topics: options.topics ?? [] });
  const child = spawn(process.execPath, [kafkaMockLauncherPath, args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const timeoutMs = options.startTimeoutMs ?? 15_000;
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // Keep this process alive until the launcher has really gone.
      child.ref();
      child.kill("SIGTERM");
    }
    await exited;
  };

  return new Promise<StartedMockKafka>((resolve, reject) => {
    let stdout = "";
    const fail = (message: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${message}${stderr ? `\nlauncher stderr: ${stderr}` : ""}`));
    };
    const timer = setTimeout(() => fail(`mock Kafka cluster did not start within ${timeoutMs} ms`), timeoutMs);
    child.once("error", (err) => fail(`cannot run the mock Kafka launcher: ${err.message}`));
    const onEarlyExit = (code: number | null, signal: string | null) =>
      fail(`mock Kafka launcher exited early (code ${code}, signal ${signal})`);
    child.once("exit", onEarlyExit);
    child.stdout.setEncoding("utf8");
    const onData = (chunk: string) => {
      stdout += chunk;
      const newline = stdout.indexOf("\n");
      if (newline < 0) return;
      child.stdout.off("data", onData);
      child.off("exit", onEarlyExit);
      let line: { bootstrapServers?: string; error?: string };
      try {
        line = JSON.parse(stdout.slice(0, newline));
      } catch {
        return fail(`unexpected output from the mock Kafka launcher: ${stdout.slice(0, newline)}`);
      }
      if (line.error || !line.bootstrapServers) {
        return fail(line.error ?? "mock Kafka launcher reported no bootstrap servers");
      }
      clearTimeout(timer);
      // Do not keep this process alive for the broker's sake: if we exit, the launcher's
      // stdin closes and it shuts down by itself.
      child.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) {
        (stream as unknown as { unref?: () => void }).unref?.();
      }
      resolve({ bootstrapServers: line.bootstrapServers.split(","), pid: child.pid ?? -1, stop });
    };
    child.stdout.on("data", onData);
  });
}
