// Configuration service benchmark on embedded PostgreSQL and the librdkafka mock broker (or the
// servers in RDM_TEST_DATABASE_URL / RDM_TEST_KAFKA_BROKERS). Prints figures; asserts nothing.
//   pnpm build && [IMPACT_ONLY=1] node bench/dist/configuration.js [cis=10000] [relationships=50000] [--per-item]
// BENCH_CPU_PROF=<dir> runs the service with --cpu-prof, its profile written there.
// 1. Seeds a CMDB of 10,000 CIs and 50,000 random relationships (all four types, full of
//    cycles) through ImportConfiguration (with --per-item: one RegisterConfigurationItem /
//    AddRelationship call each, as before), then times AnalyzeImpact from random CIs (whole
//    transitive closure with whole paths and with parent pointers, and depth-limited), to the
//    answer's last byte and decoded (impact-latency.ts).
// 2. rebuild-tables on the seeded store, the service running: how long its writes wait.
// 3. Artifact registration throughput (new name+version each call) and idempotent re-registration
//    (skipped with IMPACT_ONLY=1).
import { createHash, randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { createGrpcClient } from "@rdm/grpc";
import { RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
import { type Edge, seedByImport, seedingReport, seedPerItem } from "./configuration-seed.js";
import { impactLatency } from "./impact-latency.js";
import { rebuildTables, startServiceProcess } from "./processes.js";
import { ms, percentile, runBenchmark, startBenchServers } from "./support.js";

// Deterministic pseudo-random numbers (mulberry32, exact in 32-bit integer arithmetic), so
// every run measures the same graph.
let seed = 20261125;
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

/**
 * Waits until the service's relay has published every event of the seeding to Kafka, so the
 * figures below are not shared with that backlog's work.
 */
async function relayDrained(databaseUrl: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const started = performance.now();
  try {
    for (;;) {
      const { rows } = await db.query<{ behind: string }>(
        `SELECT count(*) AS behind FROM events e WHERE NOT EXISTS (SELECT 1 FROM relay_checkpoints c
           WHERE (e.transaction_id, e.global_position) <= (c.transaction_id, c.global_position))`,
      );
      if (Number(rows[0]?.behind) === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await db.end();
  }
  console.log(
    `relay published the seeding's events to Kafka ${((performance.now() - started) / 1000).toFixed(1)} s after it ended`,
  );
}

async function main() {
  const perItem = process.argv.includes("--per-item");
  const [cis, relationships] = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
  const ciCount = Number(cis ?? 10_000);
  const relationshipCount = Number(relationships ?? 50_000);
  const { servers, secret, token } = await startBenchServers();
  const db = await createTestDatabase("bench_configuration");
  // Its own process, as `./rdm up` runs it: the client's decoding and garbage are not the service's.
  const profile = process.env.BENCH_CPU_PROF;
  const service = await startServiceProcess(
    "configuration",
    {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: servers.kafkaBrokers.join(","),
      AUTH_JWT_SECRET: secret,
      LOG_LEVEL: "error",
      CONFIGURATION_CONSUMER_GROUP: `bench-${randomUUID()}`,
    },
    profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : [],
  );
  const client = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token });

  // 1. Seed the CMDB through the API.
  const relationshipTypes = [
    RelationshipType.DEPENDS_ON,
    RelationshipType.DEPENDS_ON,
    RelationshipType.RUNS_ON,
    RelationshipType.PART_OF,
    RelationshipType.CONNECTS_TO,
  ];
  const edges = new Set<string>();
  while (edges.size < relationshipCount) {
    const s = Math.floor(random() * ciCount);
    const t = Math.floor(random() * ciCount);
    if (s !== t) edges.add(`${s}|${relationshipTypes[Math.floor(random() * relationshipTypes.length)]}|${t}`);
  }
  const edgeList = [...edges].map((edge) => edge.split("|").map(Number) as Edge);
  const loadBefore = loadavg();
  const seedCmdb = perItem ? seedPerItem : seedByImport;
  const seeded = await seedCmdb(client, ciCount, edgeList);
  console.log(seedingReport(seeded, ciCount, relationshipCount, perItem, loadBefore));
  const { ids } = seeded;
  await relayDrained(db.url);

  // 2. Impact analysis latency, sequential calls from random roots.
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  await impactLatency(
    client,
    { address: `127.0.0.1:${service.port}`, token, service },
    () => ids[Math.floor(random() * ciCount)] as string,
    `${ciCount} CIs / ${relationshipCount} relationships`,
  );
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  // 3. The query tables rebuilt from the seeded store while the service runs.
  const rebuilt = await rebuildTables("configuration", db.url);
  console.log(
    `rebuild-tables in ${rebuilt.seconds.toFixed(1)} s (the service's writes wait as long): ${rebuilt.printed}`,
  );
  if (process.env.IMPACT_ONLY) {
    client.close();
    await service.stop();
    await db.drop();
    await servers.stop();
    return;
  }

  // 4. Artifact registration throughput.
  const concurrency = 8;
  const seconds = 10;
  const registered: { name: string; version: string; sha256: string }[] = [];
  const latencies: number[] = [];
  let deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let n = 0; performance.now() < deadline; n++) {
        const name = `bench-artifact-${worker}-${n % 50}`;
        const version = `1.${Math.floor(n / 50)}.0`;
        const sha256 = createHash("sha256").update(`${name}@${version}`).digest("hex");
        const started = performance.now();
        await client.registerArtifact({
          requestId: randomUUID(),
          name,
          version,
          sha256,
          sizeBytes: 1024n,
          mediaUri: `s3://dml/${name}-${version}.tgz`,
          dependencies: [{ name: `bench-lib-${n % 7}`, versionRange: "^1.0.0" }],
        });
        latencies.push(performance.now() - started);
        registered.push({ name, version, sha256 });
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  console.log(
    `RegisterArtifact (new versions), concurrency ${concurrency}, ${seconds} s: ${(registered.length / seconds).toFixed(0)} registrations/s, p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}`,
  );

  let repeated = 0;
  deadline = performance.now() + 5_000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const artifact = registered[Math.floor(random() * registered.length)] as (typeof registered)[number];
        await client.registerArtifact({
          requestId: randomUUID(),
          ...artifact,
          sizeBytes: 1024n,
          mediaUri: `s3://dml/${artifact.name}-${artifact.version}.tgz`,
          dependencies: [],
        });
        repeated++;
      }
    }),
  );
  console.log(
    `RegisterArtifact (idempotent re-registration of the same checksum), concurrency ${concurrency}: ${(repeated / 5).toFixed(0)} calls/s`,
  );

  client.close();
  await service.stop();
  await db.drop();
  await servers.stop();
}

runBenchmark(main);
