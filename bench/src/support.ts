// What every benchmark script shares: servers and an admin token, percentiles, formatting, and
// running main to an exit code.
import { randomUUID } from "node:crypto";
import { mintDevToken } from "@rdm/auth";
import { startTestServers } from "@rdm/testkit";
import { memoryLine } from "./procfs.js";

/** Real PostgreSQL and a Kafka-protocol broker (as tests get them), a JWT secret and an admin token for it. */
export async function startBenchServers() {
  const servers = await startTestServers();
  // createTestDatabase then makes its databases on these servers instead of starting others.
  process.env.RDM_TEST_DATABASE_URL = servers.databaseUrl;
  process.env.RDM_TEST_KAFKA_BROKERS = servers.kafkaBrokers.join(",");
  const secret = randomUUID() + randomUUID();
  const token = await mintDevToken({
    subject: "bench",
    roles: ["admin"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "2h",
  });
  return { servers, secret, token };
}

/** The p-th percentile of an ascending array (nearest rank). */
export const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

export const ms = (n: number) => `${n.toFixed(1)} ms`;

/** Runs a benchmark and exits (servers and clients may hold the event loop open). */
export function runBenchmark(main: () => Promise<void>): void {
  main().then(
    () => {
      console.log(
        memoryLine("bench process (load generator)", process.memoryUsage().rss / 1024, process.resourceUsage().maxRSS),
      );
      process.exit(0);
    },
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
