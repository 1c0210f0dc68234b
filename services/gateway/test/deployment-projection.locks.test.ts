// Two gateway replicas project one database, each a partition of the deployment topic: outcomes
// of two environments met in opposite orders both commit, rather than one being aborted as a
// deadlock between the environments' inventory locks and the deployment feed's lock.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DeploymentSucceededSchema } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { createTestDatabase, type TestDatabase, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { deploymentProjection } from "../src/projections/deployments/projection.js";
import { eventDecoder } from "../src/projections/projection.js";

let db: TestDatabase;
let pool: pg.Pool;
const decode = eventDecoder(deploymentProjection.handles);

beforeAll(async () => {
  db = await createTestDatabase("gateway_projection_locks");
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  for (const migration of deploymentProjection.migrations) await pool.query(migration.sql);
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

/** A deployment's success in `environment`, as the deployment topic carries it. */
function succeeded(environment: string, environmentSequence: bigint) {
  const deploymentId = randomUUID();
  const eventId = randomUUID();
  const message = create(DeploymentSucceededSchema, {
    metadata: { eventId, streamId: deploymentId, streamVersion: 3n, occurredAt: timestampFromDate(new Date()) },
    deploymentId,
    releaseId: randomUUID(),
    environment,
    artifacts: [{ artifactId: "art-1", name: "api", version: "1.0.0", targetCiIds: [`${environment}-host`] }],
    environmentSequence,
  });
  const event = decode({
    id: eventId,
    type: DeploymentSucceededSchema.typeName,
    source: "test",
    subject: deploymentId,
    time: new Date(),
    data: toBinary(DeploymentSucceededSchema, message),
  });
  if (!event) throw new Error("not decoded");
  return event as Parameters<typeof deploymentProjection.apply>[0];
}

test("outcomes of two environments in opposite orders on two replicas both commit", async () => {
  const [a, b] = [uniqueId("env-a"), uniqueId("env-b")];
  const first = await pool.connect();
  const second = await pool.connect();
  try {
    await first.query("BEGIN");
    await second.query("BEGIN");
    const secondPid = (await second.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
    // The first replica's chunk: an outcome of A, then one of B.
    await deploymentProjection.apply(succeeded(a, 1n), first);
    // The second's: an outcome of B, waiting on the first's transaction.
    const secondDone = deploymentProjection
      .apply(succeeded(b, 1n), second)
      .then(() => second.query("COMMIT"))
      .then(() => "committed");
    await waitFor(
      async () =>
        (await pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [secondPid]))
          .rowCount || undefined,
      { timeoutMs: 10_000, description: "the second replica waiting for a lock" },
    );
    const firstDone = deploymentProjection
      .apply(succeeded(b, 2n), first)
      .then(() => first.query("COMMIT"))
      .then(() => "committed");
    expect(await Promise.allSettled([firstDone, secondDone])).toEqual([
      { status: "fulfilled", value: "committed" },
      { status: "fulfilled", value: "committed" },
    ]);
    const { rows } = await pool.query<{ environment: string }>(
      "SELECT environment FROM deployment_feed WHERE environment = ANY($1) ORDER BY seq",
      [[a, b]],
    );
    expect(rows.map((r) => r.environment)).toEqual([a, b, b]);
  } finally {
    await first.query("ROLLBACK").catch(() => undefined);
    await second.query("ROLLBACK").catch(() => undefined);
    first.release();
    second.release();
  }
});
