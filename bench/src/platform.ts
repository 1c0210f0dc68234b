// Platform benchmark on embedded PostgreSQL and the librdkafka mock broker (or the servers in
// RDM_TEST_DATABASE_URL / RDM_TEST_KAFKA_BROKERS). Prints figures; asserts nothing.
//   pnpm build && node bench/dist/platform.js
import { randomUUID } from "node:crypto";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import { startGateway } from "@rdm/gateway";
import { createGrpcClient } from "@rdm/grpc";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { startReleaseService } from "@rdm/release";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
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

async function main() {
  const { servers, secret, token } = await startBenchServers();
  const kafkaBrokers = servers.kafkaBrokers.join(",");

  // 1. Event store appends (one event per transaction, each writer on its own stream).
  const storeDb = await createTestDatabase("bench_store");
  const pool = new pg.Pool({ connectionString: storeDb.url, max: 20 });
  await runMigrations(pool, eventStoreMigrations);
  const store = new EventStore(pool);
  for (const writers of [1, 16]) {
    console.log(
      `event store appends, ${String(writers).padStart(2)} writer(s): ${(await appendThroughput(store, writers, 5)).toFixed(0)} appends/s`,
    );
  }
  await pool.end();

  // 2. RegisterRelease latency over gRPC at a fixed concurrency.
  const releaseDb = await createTestDatabase("bench_release");
  const gatewayDb = await createTestDatabase("bench_gateway");
  const env = { KAFKA_BROKERS: kafkaBrokers, AUTH_JWT_SECRET: secret, LOG_LEVEL: "error" };
  const release = await startReleaseService({
    ...env,
    DATABASE_URL: releaseDb.url,
    GRPC_PORT: "0",
    RELEASE_CONSUMER_GROUP: `bench-release-${randomUUID()}`,
  });
  const gateway = await startGateway({
    ...env,
    DATABASE_URL: gatewayDb.url,
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
  for (let i = 0; i < 50; i++) await client.registerRelease(request()); // warm-up
  const concurrency = 8;
  const total = 2000;
  const latencies: number[] = [];
  let issued = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued++ < total) {
        const t0 = performance.now();
        await client.registerRelease(request());
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    `RegisterRelease over gRPC, concurrency ${concurrency}, ${total} calls: p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}, ${(total / elapsed).toFixed(0)} calls/s`,
  );

  // 3. Lag from the append (the RPC's response) to visibility at the gateway, one release at a time.
  const lags: number[] = [];
  for (let i = 0; i < 200; i++) {
    const { release: registered } = await client.registerRelease(request());
    const t0 = performance.now();
    for (;;) {
      const response = await fetch(`${gateway.url}/v1/releases/${registered?.releaseId}`, {
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

  await gateway.stop();
  await release.stop();
  await servers.stop();
}

runBenchmark(main);
