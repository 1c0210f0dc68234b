// Kill -9 the release service and the gateway while commands and events are in flight, start
// them again, and retry the commands whose outcome was unknown with the same request ids:
// every release exists exactly once, every event reaches the gateway, each handled once.
import { randomUUID } from "node:crypto";
import { freePort } from "@rdm/embedded";
import { createGrpcClient } from "@rdm/grpc";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { e2eStack, kill } from "./harness.js";

const stack = e2eStack("e2e-crash");
afterAll(() => stack.stop());
const run = stack.spawnService;

test("no loss and no duplicate effects when the service and the gateway are killed mid-stream", async () => {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const group = uniqueId("crash");
  const releaseDb = { url: await stack.database("release") };
  const gatewayDb = { url: await stack.database("gateway") };
  const quiet = { LOG_LEVEL: "error" };
  const releaseEnv = await stack.env("release", { databaseUrl: releaseDb.url, port: grpcPort, env: quiet });
  // A killed member holds its partitions until its session expires: the stack keeps that short.
  const gatewayEnv = await stack.env("gateway", { databaseUrl: gatewayDb.url, port: httpPort, group, env: quiet });

  let release = run("release", releaseEnv);
  let gateway = run("gateway", gatewayEnv);
  const token = await stack.token("kim", ["release-manager", "viewer"]);
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
