// Kill -9 the release service and the gateway while commands and events are in flight, start
// them again, and retry the commands whose outcome was unknown with the same request ids:
// every release exists exactly once, every event reaches the gateway, each handled once.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mintDevToken } from "@rdm/auth";
import { freePort } from "@rdm/embedded";
import { createGrpcClient } from "@rdm/grpc";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import {
  createTestDatabase,
  testConsumerTimings,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
  waitFor,
} from "@rdm/testkit";
import pg from "pg";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
});

function run(component: "release" | "gateway", env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [path.join(root, "services", component, "dist/main.js")], {
    env: { ...process.env, LOG_LEVEL: "error", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  child.stderr?.on("data", (chunk) => process.stderr.write(`[${component}] ${chunk}`));
  child.once("exit", () => children.delete(child));
  return child;
}

const kill = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });

test("no loss and no duplicate effects when the service and the gateway are killed mid-stream", async () => {
  const brokers = (await testKafkaBrokers()).join(",");
  const secret = randomUUID() + randomUUID();
  const releaseDb = await createTestDatabase("crash_release");
  const gatewayDb = await createTestDatabase("crash_gateway");
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const group = uniqueId("crash");
  const common = { KAFKA_BROKERS: brokers, KAFKA_TOPIC_PREFIX: testTopicPrefix("e2e-crash"), AUTH_JWT_SECRET: secret };
  const releaseEnv = {
    ...common,
    DATABASE_URL: releaseDb.url,
    GRPC_PORT: String(grpcPort),
    RELEASE_CONSUMER_GROUP: uniqueId("crash-release"),
    RELEASE_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
  };
  const gatewayEnv = {
    ...common,
    DATABASE_URL: gatewayDb.url,
    HTTP_PORT: String(httpPort),
    GATEWAY_CONSUMER_GROUP: group,
    // A killed member holds its partitions until its session expires: keep that short here.
    GATEWAY_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
  };

  let release = run("release", releaseEnv);
  let gateway = run("gateway", gatewayEnv);
  const token = await mintDevToken({
    subject: "kim",
    roles: ["release-manager", "viewer"],
    secret,
    issuer: "rdm",
    audience: "rdm",
  });
  const client = createGrpcClient(ReleaseService, `127.0.0.1:${grpcPort}`, { token });
  const register = (requestId: string) =>
    client.registerRelease(
      { requestId, title: `Crash test ${requestId.slice(0, 8)}`, type: ReleaseType.MINOR, owner: "kim" },
      { deadline: 5_000 },
    );
  // One request id for every probe: an attempt that timed out after committing is not a second release.
  const probeId = randomUUID();
  await waitFor(() => register(probeId).then(() => true), {
    timeoutMs: 30_000,
    description: "release service serving",
  });

  // Four writers; the release service is killed once 40 commands have succeeded.
  const requestIds: string[] = [];
  let succeeded = 0;
  let killed = false;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (!killed) {
        const id = randomUUID();
        requestIds.push(id);
        try {
          await register(id);
          if (++succeeded === 40) {
            killed = true;
            await Promise.all([kill(release), kill(gateway)]);
          }
        } catch {
          // Outcome unknown: retried with the same request id below.
        }
      }
    }),
  );

  release = run("release", releaseEnv);
  gateway = run("gateway", gatewayEnv);
  const releaseIds = new Set<string>();
  for (const id of requestIds) {
    const response = await waitFor(() => register(id), {
      timeoutMs: 30_000,
      description: `retry of ${id}`,
    });
    releaseIds.add(response.release?.releaseId as string);
  }
  expect(releaseIds.size).toBe(requestIds.length);

  const releaseSql = new pg.Client({ connectionString: releaseDb.url });
  const gatewaySql = new pg.Client({ connectionString: gatewayDb.url });
  await releaseSql.connect();
  await gatewaySql.connect();
  try {
    // One registration per request id (the first probe registration is one more release).
    const events = await releaseSql.query(
      "SELECT count(*)::int AS n, count(DISTINCT stream_id)::int AS streams FROM events WHERE type = 'rdm.release.v1.ReleaseRegistered'",
    );
    expect(events.rows[0]).toEqual({ n: requestIds.length + 1, streams: requestIds.length + 1 });

    await waitFor(
      async () => {
        const { rows } = await gatewaySql.query(
          "SELECT count(*)::int AS n FROM release_view WHERE release_id = ANY($1::uuid[])",
          [[...releaseIds]],
        );
        return rows[0].n === releaseIds.size;
      },
      { timeoutMs: 60_000, description: "every release projected after the restart" },
    );
    const handled = await gatewaySql.query(
      "SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct_events FROM rdm_handled_events WHERE consumer_group = $1",
      [group],
    );
    expect(handled.rows[0].n).toBe(handled.rows[0].distinct_events);
    expect(handled.rows[0].n).toBeGreaterThanOrEqual(requestIds.length + 1);
  } finally {
    await releaseSql.end();
    await gatewaySql.end();
    client.close();
    await Promise.all([kill(release), kill(gateway)]);
  }
}, 180_000);
