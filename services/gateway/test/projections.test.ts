// The projections against a real PostgreSQL, fed the encoded CloudEvents a topic carries: a
// projection records the rules version its views were built with and refolds them when it
// changes; the deployment feed serves the deployment and inventory SSE streams, resumable with
// Last-Event-ID.
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { runMigrations, withTransaction } from "@rdm/eventstore";
import type { CloudEvent } from "@rdm/messaging";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeploymentCancelledSchema,
  DeploymentPlannedSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleasePlanningUpdatedSchema, ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase, uniqueId } from "@rdm/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { projections } from "../src/projections/index.js";
import { ensureRulesVersion, projectionHandler, projectionRulesMigration } from "../src/projections/projection.js";
import { releaseProjection } from "../src/projections/releases/projection.js";
import { listeningGateway } from "./gateway-app.js";
import { openStream as openSseStream } from "./sse-client.js";

let db: TestDatabase;
let pool: pg.Pool;
let app: FastifyInstance;
let gatewayUrl: string;
let bearer: string;
const project = projectionHandler(projections, "");

beforeAll(async () => {
  db = await createTestDatabase("gateway_projections");
  pool = await openDatabase(db.url);
  await runMigrations(pool, { component: "gateway.projections", migrations: [projectionRulesMigration] });
  for (const p of projections) await runMigrations(pool, { component: p.name, migrations: p.migrations });
  ({ app, url: gatewayUrl, bearer } = await listeningGateway(pool));
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await db?.drop();
});

/** Projects one event as the consumer does: encoded, on its topic, in a transaction; `subject` is its stream. */
async function publish<D extends DescMessage>(topic: string, schema: D, message: MessageShape<D>, subject: string) {
  const { metadata } = message as { metadata?: EventMetadata };
  const event: CloudEvent = {
    id: metadata?.eventId ?? randomUUID(),
    type: schema.typeName,
    source: "test",
    subject,
    time: new Date(),
    data: toBinary(schema, { ...message, ...(metadata ? { metadata: { ...metadata, streamId: subject } } : {}) }),
  };
  await withTransaction(pool, (tx) => project(event, tx, { topic }));
}

const metadata = (streamVersion: bigint) => ({
  eventId: randomUUID(),
  actor: "rita",
  streamVersion,
  occurredAt: timestampFromDate(new Date()),
});

describe("rules versions", () => {
  const releaseId = randomUUID();

  async function snapshotTitle(): Promise<string> {
    const { rows } = await pool.query<{ title: string }>(
      "SELECT snapshot->>'title' AS title FROM release_view WHERE release_id = $1",
      [releaseId],
    );
    return rows[0]?.title ?? "";
  }

  beforeAll(async () => {
    const topic = releaseProjection.topic;
    await publish(
      topic,
      ReleaseRegisteredSchema,
      create(ReleaseRegisteredSchema, {
        metadata: metadata(1n),
        releaseId,
        key: uniqueId("REL"),
        title: "first title",
        type: ReleaseType.MINOR,
        owner: "olga",
        phase: ReleasePhase.PLANNING,
      }),
      releaseId,
    );
    await publish(
      topic,
      ReleasePlanningUpdatedSchema,
      create(ReleasePlanningUpdatedSchema, { metadata: metadata(2n), releaseId, title: "second title" }),
      releaseId,
    );
  });

  test("a view without a recorded rules version is rebuilt once, then kept", async () => {
    expect(await ensureRulesVersion(pool, releaseProjection)).toBe(true);
    expect(await ensureRulesVersion(pool, releaseProjection)).toBe(false);
    expect(await snapshotTitle()).toBe("second title");
  });

  test("another rules version refolds every release from its logged events", async () => {
    // What a gateway folding with other rules would have stored.
    await pool.query(
      `UPDATE release_view SET title = 'stale', snapshot = jsonb_set(snapshot, '{title}', '"stale"')
       WHERE release_id = $1`,
      [releaseId],
    );
    await pool.query("UPDATE gateway_projection_rules SET rules_version = 0 WHERE projection = $1", [
      releaseProjection.name,
    ]);
    expect(await ensureRulesVersion(pool, releaseProjection)).toBe(true);
    expect(await snapshotTitle()).toBe("second title");
    const { rows } = await pool.query("SELECT title, version FROM release_view WHERE release_id = $1", [releaseId]);
    expect(rows).toEqual([{ title: "second title", version: "2" }]);
  });
});

/** Opens an SSE stream; `nextEvent()` gives the next event's id and name, past comments. */
const openStream = (path: string, headers: Record<string, string> = {}) =>
  openSseStream(gatewayUrl, path, { authorization: bearer, ...headers });

describe("the deployment and inventory streams", () => {
  const environment = uniqueId("env");
  const releaseId = randomUUID();
  const deploymentId = randomUUID();
  const topic = "rdm.deployment.events.v1";
  const artifacts = [{ artifactId: "", name: "payments-api", version: "4.2.0", targetCiIds: ["host-1"] }];
  const succeeded = (id: string, environmentSequence: bigint) =>
    publish(
      topic,
      DeploymentSucceededSchema,
      create(DeploymentSucceededSchema, {
        ...{ deploymentId: id, releaseId, environment, artifacts, environmentSequence },
        metadata: metadata(2n),
      }),
      id,
    );

  beforeAll(async () => {
    const started = { deploymentId, releaseId, environment, artifacts, strategy: "ROLLING", environmentSequence: 1n };
    await publish(
      topic,
      DeploymentStartedSchema,
      create(DeploymentStartedSchema, { ...started, metadata: metadata(1n) }),
      deploymentId,
    );
    await succeeded(deploymentId, 2n);
  });

  test("the deployment stream replays an environment's events in order and resumes after Last-Event-ID", async () => {
    const stream = await openStream(`/v1/deployments/events?environment=${environment}&after=0`);
    let first: { id: number; event: string };
    try {
      first = await stream.nextEvent();
      const second = await stream.nextEvent();
      expect([first.event, second.event]).toEqual([
        "rdm.deployment.v1.DeploymentStarted",
        "rdm.deployment.v1.DeploymentSucceeded",
      ]);
      expect(second.id).toBeGreaterThan(first.id);
      expect(second.data).toMatchObject({ deploymentId, releaseId, environment, environmentSequence: 2 });
    } finally {
      stream.close();
    }
    const resumed = await openStream(`/v1/deployments/events?environment=${environment}&after=0`, {
      "last-event-id": String(first.id),
    });
    try {
      expect((await resumed.nextEvent()).event).toBe("rdm.deployment.v1.DeploymentSucceeded");
    } finally {
      resumed.close();
    }
  });

  test("the deployment stream carries every event of a deployment, named as its plan names it", async () => {
    const other = uniqueId("env");
    const id = randomUUID();
    const planned = { deploymentId: id, releaseId, environment: other, metadata: metadata(1n) };
    await publish(topic, DeploymentPlannedSchema, create(DeploymentPlannedSchema, planned), id);
    // Published without its release and environment (as events recorded before they were added).
    const cancelled = { deploymentId: id, reason: "superseded", metadata: metadata(2n) };
    await publish(topic, DeploymentCancelledSchema, create(DeploymentCancelledSchema, cancelled), id);
    const stream = await openStream(`/v1/deployments/events?environment=${other}&after=0`);
    try {
      expect(await stream.nextEvent()).toMatchObject({ event: "rdm.deployment.v1.DeploymentPlanned" });
      expect(await stream.nextEvent()).toMatchObject({
        event: "rdm.deployment.v1.DeploymentCancelled",
        data: { deploymentId: id, releaseId, environment: other, environmentSequence: 0 },
      });
    } finally {
      stream.close();
    }
  });

  test("the inventory stream carries the outcomes that changed the inventory, live", async () => {
    const stream = await openStream(`/v1/environments/${environment}/inventory/events?after=0`);
    try {
      expect(await stream.nextEvent()).toMatchObject({
        event: "rdm.deployment.v1.DeploymentSucceeded",
        data: { deploymentId },
      });
      const next = randomUUID();
      await succeeded(next, 3n);
      expect(await stream.nextEvent()).toMatchObject({ data: { deploymentId: next, environmentSequence: 3 } });
    } finally {
      stream.close();
    }
  });

  test("the inventory stream of an environment neither defined nor deployed to is a 404, as its inventory", async () => {
    const response = await fetch(`${gatewayUrl}/v1/environments/${environment}-typo/inventory/events`, {
      headers: { authorization: bearer },
    });
    expect([response.status, (await response.json()).detail]).toEqual([
      404,
      `environment ${environment}-typo is neither defined nor deployed to`,
    ]);
  });

  test("a Last-Event-ID that is no id of the stream is a 400", async () => {
    const response = await fetch(`${gatewayUrl}/v1/environments/${environment}/inventory/events`, {
      headers: { authorization: bearer, "last-event-id": "1.5" },
    });
    expect(response.status).toBe(400);
  });
});
