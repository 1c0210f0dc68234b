// A command's cost as its release grows: RecordReleaseLogEntry on one release, one call at a
// time, at several lengths of its log, with the CPU each process spends a call until the gateway
// has projected it, then GetRelease's latency and the size of the request ids' recorded answers
// (command_results). The release service answers every command with the whole release (so its
// cost grows with it); the gateway writes each log entry once. Prints figures; asserts nothing.
//   pnpm build && node bench/dist/release-size.js [longest log=3000]
import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { createGrpcClient } from "@rdm/grpc";
import { LogEntryKind, type Release, ReleaseSchema, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import pg from "pg";
import { printCpu, type ServiceProcess, sampleCpu, startServiceOnNewDatabase } from "./processes.js";
import { ms, percentile, runBenchmark, startBenchServers } from "./support.js";

const longest = Number(process.argv[2] ?? 3000);
const LENGTHS = [...new Set([0, 250, 1000, 2000, longest].filter((n) => n <= longest))];
const TIMED = 40;

/**
 * Waits until the gateway has projected the release's event at `version`: reads the release's
 * audit entries after the last one seen (small answers, unlike the release itself).
 */
async function projected(
  gatewayUrl: string,
  token: string,
  releaseId: string,
  version: number,
  cursor: { after: number },
) {
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (performance.now() > deadline) throw new Error(`the gateway did not project version ${version} within 60 s`);
    const response = await fetch(`${gatewayUrl}/v1/audit?release=${releaseId}&after=${cursor.after}&limit=500`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const { entries } = (await response.json()) as { entries: { seq: number; streamVersion: number }[] };
    cursor.after = entries.at(-1)?.seq ?? cursor.after;
    if (entries.some((e) => e.streamVersion >= version)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function main() {
  const bench = await startBenchServers();
  const release = await startServiceOnNewDatabase("release", bench);
  const gateway = await startServiceOnNewDatabase("gateway", bench);
  const services: ServiceProcess[] = [release, gateway];
  const releaseDb = new pg.Client({ connectionString: release.databaseUrl });
  await releaseDb.connect();
  // What the release service keeps for request ids (one row a command, with its answer).
  const answersKb = async () =>
    Number((await releaseDb.query("SELECT pg_total_relation_size('command_results') AS n")).rows[0].n) / 1024;
  const client = createGrpcClient(ReleaseService, `127.0.0.1:${release.port}`, { token: bench.token });
  const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
  const registered = await client.registerRelease({
    requestId: randomUUID(),
    title: "A release with a long log",
    type: ReleaseType.MAJOR,
    owner: "bench",
  });
  const releaseId = registered.release?.releaseId ?? "";
  const cursor = { after: 0 };
  let entries = 0;
  const record = async () => {
    const n = entries++;
    const text = `deployment step ${n} done on host-${n % 40}: ${"x".repeat(150)}`;
    return (await client.recordReleaseLogEntry({ requestId: randomUUID(), releaseId, kind: LogEntryKind.ISSUE, text }))
      .release as Release;
  };
  for (const length of LENGTHS) {
    // Untimed: the log up to `length`, eight calls in flight (they take turns on the one stream).
    while (entries < length) await Promise.all(Array.from({ length: Math.min(8, length - entries) }, record));
    let last = registered.release as Release;
    const latencies: number[] = [];
    const before = sampleCpu(services);
    for (let i = 0; i < TIMED; i++) {
      const t0 = performance.now();
      last = await record();
      latencies.push(performance.now() - t0);
    }
    await projected(gatewayUrl, bench.token, releaseId, Number(last.version), cursor);
    latencies.sort((a, b) => a - b);
    const kb = toBinary(ReleaseSchema, last).byteLength / 1024;
    console.log(
      `release of ${String(entries).padStart(5)} log entries (${kb.toFixed(0)} KB): RecordReleaseLogEntry one at a time ` +
        `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}`,
    );
    printCpu(before, sampleCpu(services), TIMED);
    const reads: number[] = [];
    for (let i = 0; i < TIMED; i++) {
      const t0 = performance.now();
      await client.getRelease({ releaseId });
      reads.push(performance.now() - t0);
    }
    reads.sort((a, b) => a - b);
    console.log(`  GetRelease one at a time p50 ${ms(percentile(reads, 50))}, p99 ${ms(percentile(reads, 99))}`);
    console.log(`  command_results (recorded answers): ${(await answersKb()).toFixed(0)} KB`);
  }
  await releaseDb.end();
  for (const service of services.reverse()) await service.stop();
  await bench.servers.stop();
}

runBenchmark(main);
