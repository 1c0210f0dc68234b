// The deployment routes over their projection tables (no broker): inputs PostgreSQL cannot take
// are 400 problems, not 500s; unknown deployments and environments are 404; page tokens walk
// every deployment once; the routes are described in the OpenAPI document.
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createTokenVerifier, mintDevToken } from "@rdm/auth";
import { runMigrations } from "@rdm/eventstore";
import { createLogger } from "@rdm/observability";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase, uniqueId } from "@rdm/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { buildGatewayApp } from "../src/app.js";
import { configurationProjectionMigrations } from "../src/projections/configuration/migrations.js";
import { deploymentProjectionMigrations } from "../src/projections/deployments/migrations.js";

const secret = randomUUID() + randomUUID();
let db: TestDatabase;
let pool: pg.Pool;
let app: FastifyInstance;
let gatewayUrl: string;
let bearer: string;

beforeAll(async () => {
  db = await createTestDatabase("gateway_deployment_routes");
  pool = await openDatabase(db.url);
  await runMigrations(pool, { component: "gateway.configuration", migrations: configurationProjectionMigrations });
  await runMigrations(pool, { component: "gateway.deployments", migrations: deploymentProjectionMigrations });
  app = await buildGatewayApp({
    pool,
    verifier: createTokenVerifier({ issuer: "rdm", audience: "rdm", secret }),
    logger: createLogger("gateway", "warn"),
    databaseAvailable: () => true,
    isReady: () => true,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  gatewayUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const token = await mintDevToken({ subject: "vera", roles: ["viewer"], secret, issuer: "rdm", audience: "rdm" });
  bearer = `Bearer ${token}`;
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await db?.drop();
});

async function get(path: string) {
  const response = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: bearer } });
  // biome-ignore lint/suspicious/noExplicitAny: the assertions below say what shape they expect
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

const pageToken = (sortKey: string, id: string) => Buffer.from(JSON.stringify([sortKey, id])).toString("base64url");

test.each([
  ["NUL in a deployment id", "/v1/deployments/dep%00one"],
  ["NUL in an environment filter", "/v1/deployments?environment=a%00b"],
  ["NUL in an environment", "/v1/environments/a%00b/inventory"],
  ["NUL in a page token id", `/v1/deployments?pageToken=${pageToken("2026-12-01T09:00:00.000Z", "a\u0000")}`],
  ["a page token that is not one", "/v1/deployments?pageToken=garbage"],
  ["an unknown state", "/v1/deployments?state=EXPLODED"],
  ["a release id that is no uuid", "/v1/releases/not-a-uuid/deployments"],
  ["an unknown filter", "/v1/deployments?colour=blue"],
])("%s is a 400 problem", async (_, path) => {
  const { status, body } = await get(path);
  expect({ status, body }).toEqual({
    status: 400,
    body: expect.objectContaining({ status: 400, title: "Bad Request" }),
  });
});

test("unknown deployments and environments are 404; a release without deployments has none", async () => {
  expect((await get(`/v1/deployments/${uniqueId("dep")}`)).status).toBe(404);
  expect((await get(`/v1/environments/${uniqueId("env")}/inventory`)).status).toBe(404);
  expect(await get(`/v1/releases/${randomUUID()}/deployments`)).toEqual({ status: 200, body: { deployments: [] } });
});

test("page tokens walk every deployment once, newest first", async () => {
  const environment = uniqueId("env");
  const ids = Array.from({ length: 5 }, () => uniqueId("dep"));
  for (const [i, id] of ids.entries()) {
    // Two share a time: the id breaks the tie.
    const at = new Date(Date.UTC(2026, 11, 1, 9, Math.min(i, 3)));
    await pool.query(
      `INSERT INTO deployment_view (deployment_id, release_id, environment, state, state_sequence, strategy, artifacts,
         first_event_at, updated_at)
       VALUES ($1, $2, $3, 'IN_PROGRESS', 0, 'ROLLING', '[]', $4, $4)`,
      [id, randomUUID(), environment, at],
    );
  }
  const walked: string[] = [];
  let token: string | null = null;
  do {
    const page: { body: Record<string, unknown> } = await get(
      `/v1/deployments?environment=${environment}&pageSize=2${token ? `&pageToken=${token}` : ""}`,
    );
    walked.push(...(page.body.deployments as { deploymentId: string }[]).map((d) => d.deploymentId));
    token = page.body.nextPageToken as string | null;
  } while (token);
  const all = (await get(`/v1/deployments?environment=${environment}`)).body.deployments.map(
    (d: { deploymentId: string }) => d.deploymentId,
  );
  expect(walked).toEqual(all);
  expect([...walked].sort()).toEqual([...ids].sort());
});

test("the OpenAPI document describes the deployment routes with examples", async () => {
  const response = await fetch(`${gatewayUrl}/docs/json`);
  const doc = (await response.json()) as {
    paths: Record<string, Record<string, { summary?: string; tags?: string[] }>>;
  };
  for (const path of [
    "/v1/deployments",
    "/v1/deployments/{id}",
    "/v1/releases/{id}/deployments",
    "/v1/environments",
    "/v1/environments/{environment}/inventory",
  ]) {
    expect(doc.paths[path]?.get).toMatchObject({ summary: expect.any(String), tags: ["deployments"] });
  }
  expect(JSON.stringify(doc.paths["/v1/environments/{environment}/inventory"])).toContain("ROLLED_BACK");
});

test("the OpenAPI document gives every route its 401, 403 and 503, and every event stream its 200 stream", async () => {
  const doc = (await (await fetch(`${gatewayUrl}/docs/json`)).json()) as {
    paths: Record<string, { get: { responses: Record<string, { content?: Record<string, unknown> }> } }>;
  };
  const routes = Object.entries(doc.paths).filter(([path]) => path.startsWith("/v1/"));
  expect(routes.length).toBeGreaterThan(20);
  for (const [path, { get }] of routes) {
    expect({ path, codes: Object.keys(get.responses) }).toEqual({
      path,
      codes: expect.arrayContaining(["200", "401", "403", "503"]),
    });
    if (path.endsWith("/events")) {
      expect({ path, content: Object.keys(get.responses["200"]?.content ?? {}) }).toEqual({
        path,
        content: ["text/event-stream"],
      });
    }
  }
});
