// Platform benchmark on embedded PostgreSQL and the librdkafka mock broker (or the servers in
// RDM_TEST_DATABASE_URL / RDM_TEST_KAFKA_BROKERS). The services and the gateway run as their own
// processes (as `./rdm up` runs them); this process only generates load. Prints figures and each
// process's CPU seconds per 1,000 calls; asserts nothing.
//   pnpm build && node bench/dist/platform.js [visibility|commands]
// `visibility` runs only the bare appends and the append -> gateway visibility (1-2 minutes);
// `commands` only the bare appends and the command loads (`commands change`: only the change
// service's; likewise `release`, `configuration`).
// BENCH_VISIBILITY_CALLS: the calls of the load beside the visibility probes (default 3000).
// BENCH_CPU_PROF=<dir> runs the services and the gateway with --cpu-prof, their profiles
// written under it (release/, gateway/, change/, configuration/: one profile per thread).
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import { createGrpcClient } from "@rdm/grpc";
import { ChangeImpact, ChangeType, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { LogEntryKind, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
import { measureLoad, underLoad } from "./command-load.js";
import { printCpu, type ServiceProcess, sampleCpu, startServiceOnNewDatabase } from "./processes.js";
import { ms, runBenchmark, startBenchServers } from "./support.js";
import { gatewayVisibility, idleCpu, type Probe, type ReleaseRequest, watchReleaseTopic } from "./visibility.js";

async function appendThroughput(store: EventStore, writers: number, seconds: number): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let appended = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      const stream = randomUUID();
      for (let version = 0; performance.now() < deadline; version++) {
        await store.appendToStream(stream, version === 0 ? "no_stream" : version, [
          { type: "bench.v1.Appended", data: new Uint8Array(200), metadata: { actor: "bench" } },
        ]);
        appended++;
      }
    }),
  );
  return appended / seconds;
}

type Bench = Awaited<ReturnType<typeof startBenchServers>>;
interface Run {
  bench: Bench;
  bareAppends: number;
  services: ServiceProcess[];
}

const CONCURRENCY = 32;
const TOTAL = 3000;
// The load beside the visibility probes: about one probe per 60 calls, so the default gives a p99
// that is the slowest of about 50 probes; BENCH_VISIBILITY_CALLS=30000 gives about 550.
const VISIBILITY_LOAD = Number(process.env.BENCH_VISIBILITY_CALLS ?? TOTAL);
// Untimed calls of a kind before it is measured: a freshly started service's code is still being
// optimised over its first thousands of calls, and the figures are meant for one up a while.
const WARM_UP = 2000;

/** A service in its own process with its own database; counted in the CPU lines while it runs. */
async function startService(
  run: Run,
  name: "release" | "change" | "configuration" | "gateway",
  nodeArgs: string[] = [],
) {
  const service = await startServiceOnNewDatabase(name, run.bench, nodeArgs);
  run.services.push(service);
  return service;
}

async function stopService(run: Run, service: ServiceProcess) {
  run.services.splice(run.services.indexOf(service), 1);
  await service.stop();
}

async function releaseCommands(run: Run, client: Probe["client"], request: ReleaseRequest) {
  const register = () => client.registerRelease(request());
  await underLoad(8, WARM_UP, register);
  await measureLoad("RegisterRelease", 8, 2000, register, run);
  await measureLoad("RegisterRelease", CONCURRENCY, TOTAL, register, run);
  // Each worker on its own ten releases, in turn: a command on an existing stream, never racing
  // another, on releases of a realistic length (the answer carries every log entry).
  const releaseIds = await Promise.all(
    Array.from({ length: CONCURRENCY * 10 }, async () => (await register()).release?.releaseId ?? ""),
  );
  const turns = Array.from({ length: CONCURRENCY }, () => 0);
  const logEntry = (worker: number) => {
    const turn = (turns[worker] ?? 0) + 1;
    turns[worker] = turn;
    return client.recordReleaseLogEntry({
      requestId: randomUUID(),
      releaseId: releaseIds[worker * 10 + (turn % 10)] as string,
      kind: LogEntryKind.RISK,
      text: "benchmark log entry",
    });
  };
  await underLoad(CONCURRENCY, WARM_UP, logEntry);
  await measureLoad("RecordReleaseLogEntry", CONCURRENCY, TOTAL, logEntry, run);
}

async function changeCommands(run: Run) {
  const service = await startService(run, "change", profiled("change"));
  const client = createGrpcClient(ChangeService, `127.0.0.1:${service.port}`, { token: run.bench.token });
  const details = {
    title: "Upgrade payments database",
    justification: "end of support",
    affectedCiIds: ["ci-db"],
    environments: ["production"],
    implementationPlan: "pg_upgrade --link",
    testPlan: "smoke tests",
    backoutPlan: "restore the snapshot",
    impact: ChangeImpact.MEDIUM,
    urgency: ChangeUrgency.MEDIUM,
  };
  const raise = () => client.raiseChange({ requestId: randomUUID(), type: ChangeType.NORMAL, ...details });
  // Every raise takes the year's next key (CHG-2026-0042): what serialised them shows here.
  await underLoad(CONCURRENCY, WARM_UP, raise);
  await measureLoad("RaiseChange", CONCURRENCY, TOTAL, raise, run);
  const changeIds = await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => (await raise()).change?.changeRequestId ?? ""),
  );
  const update = (worker: number) =>
    client.updateChange({ requestId: randomUUID(), changeRequestId: changeIds[worker] as string, ...details });
  await underLoad(CONCURRENCY, WARM_UP, update);
  await measureLoad("UpdateChange", CONCURRENCY, TOTAL, update, run);
  await stopService(run, service);
}

async function configurationCommands(run: Run) {
  const service = await startService(run, "configuration", profiled("configuration"));
  const client = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token: run.bench.token });
  let n = 0;
  const register = () =>
    client.registerConfigurationItem({ requestId: randomUUID(), name: `ci-${n++}`, type: CiType.HOST, owner: "bench" });
  await underLoad(CONCURRENCY, WARM_UP, register);
  await measureLoad("RegisterConfigurationItem", CONCURRENCY, TOTAL, register, run);
  await stopService(run, service);
}

/** Append -> gateway visibility one at a time, then beside 32 RegisterRelease calls in flight. */
async function visibility(run: Run, gateway: ServiceProcess, probe: Probe) {
  // Before the loads: with their backlog still on the topic, the gateway would be measured catching up.
  await gatewayVisibility("one at a time", probe, 200);
  // Then warmed up as the other loads are, and with the gateway caught up (a probe after the
  // warm-up is visible only once every release before it is).
  await underLoad(CONCURRENCY, WARM_UP, () => probe.client.registerRelease(probe.request()));
  await gatewayVisibility("after the warm-up", probe, 1, () => false, 300_000);
  await idleCpu(gateway, 10);
  // Then while 32 RegisterRelease calls are in flight, probing until the load ends: a gateway
  // that falls behind the load shows here as a growing lag.
  let loaded = true;
  const beforeLoad = sampleCpu(run.services);
  const load = measureLoad(
    "RegisterRelease (beside probes)",
    CONCURRENCY,
    VISIBILITY_LOAD,
    () => probe.client.registerRelease(probe.request()),
    run,
  ).finally(() => {
    loaded = false;
  });
  await gatewayVisibility(`under ${CONCURRENCY} in flight`, probe, 1000, () => !loaded, 300_000);
  await load;
  // A gateway behind the load spends part of its work for the load after it: the CPU until one
  // release registered after the load is visible is what projecting the load cost.
  const ended = performance.now();
  await gatewayVisibility("after the load", probe, 1, () => false, 300_000);
  console.log(`  gateway caught up ${ms(performance.now() - ended)} after the load; until then:`);
  printCpu(beforeLoad, sampleCpu(run.services), VISIBILITY_LOAD);
}

/** Event store appends, one event per transaction, each writer on its own stream, in this process. */
async function bareAppendsOf(): Promise<number> {
  const storeDb = await createTestDatabase("bench_store");
  const pool = new pg.Pool({ connectionString: storeDb.url, max: 20 });
  await runMigrations(pool, eventStoreMigrations);
  const store = new EventStore(pool);
  let bareAppends = 0;
  for (const writers of [1, 16]) {
    const before = sampleCpu([]);
    bareAppends = await appendThroughput(store, writers, 5);
    console.log(`event store appends, ${String(writers).padStart(2)} writer(s): ${bareAppends.toFixed(0)} appends/s`);
    printCpu(before, sampleCpu([]), bareAppends * 5);
  }
  await pool.end();
  return bareAppends;
}

const printLoadAverage = (when: string) =>
  console.log(
    `load average ${when}: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );

const profiled = (name: string) => {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}/${name}`] : [];
};

async function main() {
  const mode = process.argv[2];
  const bench = await startBenchServers();
  printLoadAverage("at start");
  const run: Run = { bench, bareAppends: await bareAppendsOf(), services: [] };

  const release = await startService(run, "release", profiled("release"));
  const gateway = await startService(run, "gateway", profiled("gateway"));
  const client = createGrpcClient(ReleaseService, `127.0.0.1:${release.port}`, { token: bench.token });
  const request = () => ({
    requestId: randomUUID(),
    title: "Benchmark release",
    type: ReleaseType.MINOR,
    owner: "bench",
  });
  const topic = await watchReleaseTopic(bench.servers.kafkaBrokers);
  const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
  const probe = { client, gatewayUrl, token: bench.token, request, onTopic: topic.onTopic };
  if (mode !== "commands") await visibility(run, gateway, probe);
  if (mode !== "visibility") {
    const only = process.argv[3];
    if (!only || only === "release") await releaseCommands(run, client, request);
    if (!only || only === "change") await changeCommands(run);
    if (!only || only === "configuration") await configurationCommands(run);
  }
  printLoadAverage("at end");

  await topic.stop();
  await stopService(run, gateway);
  await stopService(run, release);
  await bench.servers.stop();
}

runBenchmark(main);
