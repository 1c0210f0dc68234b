// Platform benchmark on embedded PostgreSQL and the librdkafka mock broker (or the servers in
// RDM_TEST_DATABASE_URL / RDM_TEST_KAFKA_BROKERS). Prints figures; asserts nothing.
//   pnpm build && node bench/dist/platform.js
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { startChangeService } from "@rdm/change";
import { startConfigurationService } from "@rdm/configuration";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import { startGateway } from "@rdm/gateway";
import { createGrpcClient, type GrpcClient } from "@rdm/grpc";
import { ChangeImpact, ChangeType, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { LogEntryKind, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { startReleaseService } from "@rdm/release";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
import { printLoad, underLoad } from "./command-load.js";
import { ms, percentile, runBenchmark, startBenchServers } from "./support.js";

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

/** Lag from the append (the RPC's response) to visibility at the gateway, one release at a time. */
async function gatewayVisibility(
  client: GrpcClient<(typeof ReleaseService)["method"]>,
  gatewayUrl: string,
  token: string,
  request: () => { requestId: string; title: string; type: ReleaseType; owner: string },
) {
  const lags: number[] = [];
  for (let i = 0; i < 200; i++) {
    const { release: registered } = await client.registerRelease(request());
    const t0 = performance.now();
    for (;;) {
      const response = await fetch(`${gatewayUrl}/v1/releases/${registered?.releaseId}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await response.arrayBuffer();
      if (response.status === 200) break;
      if (performance.now() - t0 > 30_000) throw new Error("release never became visible at the gateway");
    }
    lags.push(performance.now() - t0);
  }
  lags.sort((a, b) => a - b);
  console.log(
    `append -> gateway visibility, 200 releases: p50 ${ms(percentile(lags, 50))}, p99 ${ms(percentile(lags, 99))}`,
  );
}

type Servers = Awaited<ReturnType<typeof startBenchServers>>;

const CONCURRENCY = 32;
const TOTAL = 3000;

async function releaseCommands(
  client: GrpcClient<(typeof ReleaseService)["method"]>,
  bareAppends: number,
  request: () => { requestId: string; title: string; type: ReleaseType; owner: string },
) {
  for (let i = 0; i < 50; i++) await client.registerRelease(request()); // warm-up
  printLoad("RegisterRelease", 8, await underLoad(8, 2000, () => client.registerRelease(request())), bareAppends);
  printLoad(
    "RegisterRelease",
    CONCURRENCY,
    await underLoad(CONCURRENCY, TOTAL, () => client.registerRelease(request())),
    bareAppends,
  );
  // Each worker on its own ten releases, in turn: a command on an existing stream, never racing
  // another, on releases of a realistic length (the answer carries every log entry).
  const releaseIds = await Promise.all(
    Array.from(
      { length: CONCURRENCY * 10 },
      async () => (await client.registerRelease(request())).release?.releaseId ?? "",
    ),
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
  printLoad("RecordReleaseLogEntry", CONCURRENCY, await underLoad(CONCURRENCY, TOTAL, logEntry), bareAppends);
}

async function changeCommands({ servers, secret, token }: Servers, bareAppends: number) {
  const db = await createTestDatabase("bench_change");
  const service = await startChangeService({
    ...serviceEnv(servers, secret, db.url),
    CHANGE_CONSUMER_GROUP: `bench-change-${randomUUID()}`,
  });
  const client = createGrpcClient(ChangeService, `127.0.0.1:${service.port}`, { token });
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
  const changeIds = await Promise.all(
    Array.from(
      { length: CONCURRENCY },
      async () =>
        (await client.raiseChange({ requestId: randomUUID(), type: ChangeType.NORMAL, ...details })).change
          ?.changeRequestId ?? "",
    ),
  );
  const update = (worker: number) =>
    client.updateChange({ requestId: randomUUID(), changeRequestId: changeIds[worker] as string, ...details });
  for (let i = 0; i < 50; i++) await update(0); // warm-up
  printLoad("UpdateChange", CONCURRENCY, await underLoad(CONCURRENCY, TOTAL, update), bareAppends);
  await service.stop();
}

async function configurationCommands({ servers, secret, token }: Servers, bareAppends: number) {
  const db = await createTestDatabase("bench_configuration_commands");
  const service = await startConfigurationService({
    ...serviceEnv(servers, secret, db.url),
    CONFIGURATION_CONSUMER_GROUP: `bench-configuration-${randomUUID()}`,
  });
  const client = createGrpcClient(ConfigurationService, `127.0.0.1:${service.port}`, { token });
  let n = 0;
  const register = () =>
    client.registerConfigurationItem({ requestId: randomUUID(), name: `ci-${n++}`, type: CiType.HOST, owner: "bench" });
  for (let i = 0; i < 50; i++) await register(); // warm-up
  printLoad("RegisterConfigurationItem", CONCURRENCY, await underLoad(CONCURRENCY, TOTAL, register), bareAppends);
  await service.stop();
}

const serviceEnv = (servers: Servers["servers"], secret: string, url: string) => ({
  DATABASE_URL: url,
  KAFKA_BROKERS: servers.kafkaBrokers.join(","),
  AUTH_JWT_SECRET: secret,
  GRPC_PORT: "0",
  LOG_LEVEL: "error",
});

async function main() {
  const bench = await startBenchServers();
  const { servers, secret, token } = bench;
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );

  // 1. Event store appends (one event per transaction, each writer on its own stream).
  const storeDb = await createTestDatabase("bench_store");
  const pool = new pg.Pool({ connectionString: storeDb.url, max: 20 });
  await runMigrations(pool, eventStoreMigrations);
  const store = new EventStore(pool);
  let bareAppends = 0;
  for (const writers of [1, 16]) {
    bareAppends = await appendThroughput(store, writers, 5);
    console.log(`event store appends, ${String(writers).padStart(2)} writer(s): ${bareAppends.toFixed(0)} appends/s`);
  }
  await pool.end();

  // 2. Visibility at the gateway, then commands over gRPC beside the bare appends at 16 writers.
  const releaseDb = await createTestDatabase("bench_release");
  const gatewayDb = await createTestDatabase("bench_gateway");
  const release = await startReleaseService({
    ...serviceEnv(servers, secret, releaseDb.url),
    RELEASE_CONSUMER_GROUP: `bench-release-${randomUUID()}`,
  });
  const gateway = await startGateway({
    ...serviceEnv(servers, secret, gatewayDb.url),
    HTTP_PORT: "0",
    GATEWAY_CONSUMER_GROUP: `bench-${randomUUID()}`,
  });
  const client = createGrpcClient(ReleaseService, `127.0.0.1:${release.port}`, { token });
  const request = () => ({
    requestId: randomUUID(),
    title: "Benchmark release",
    type: ReleaseType.MINOR,
    owner: "bench",
  });
  // Before the loads: with their backlog still on the topic, the gateway would be measured catching up.
  await gatewayVisibility(client, gateway.url, token, request);
  await releaseCommands(client, bareAppends, request);
  await changeCommands(bench, bareAppends);
  await configurationCommands(bench, bareAppends);
  console.log(
    `load average after the commands: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );

  await gateway.stop();
  await release.stop();
  await servers.stop();
}

runBenchmark(main);
