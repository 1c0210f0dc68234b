// Route schemas are compiled on a route's first use (lazy-schemas.ts): requests are still
// validated and answers still serialized by their schemas, a bad schema fails its route's first
// call instead of the start, and compileSchemasAtStart finds every bad schema of the gateway at once.

import type { AddressInfo } from "node:net";
import { createTokenVerifier } from "@rdm/auth";
import { createLogger } from "@rdm/observability";
import Fastify, { type FastifyInstance } from "fastify";
import pg from "pg";
import { buildGatewayApp } from "../src/app.js";
import { lazySchemaCompilers } from "../src/http/lazy-schemas.js";

function appWith(compileAtStart: boolean, schema: object) {
  const { compileAll, ...compilersFactory } = lazySchemaCompilers();
  const app = Fastify({ schemaController: { compilersFactory } });
  if (compileAtStart) app.addHook("onReady", async () => compileAll());
  app.get("/items", { schema }, async (request) => ({ ...(request.query as object), secret: "not in the schema" }));
  return app;
}

/** GET on the app, listening on loopback (fastify's inject does not load under jest's ESM runtime). */
async function get(app: FastifyInstance, path: string) {
  if (!app.server.listening) await app.listen({ host: "127.0.0.1", port: 0 });
  const response = await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}${path}`);
  return { statusCode: response.status, body: await response.text() };
}

const itemsSchema = {
  querystring: {
    type: "object",
    properties: { limit: { type: "integer", maximum: 10 } },
    additionalProperties: false,
  },
  response: { 200: { type: "object", properties: { limit: { type: "integer" } } } },
};

test("a request is validated and its answer serialized by the route's schemas, compiled on first use", async () => {
  const app = appWith(false, itemsSchema);
  try {
    const refused = await get(app, "/items?limit=99");
    expect(refused.statusCode).toBe(400);
    expect(JSON.parse(refused.body).message).toBe("querystring/limit must be <= 10");
    const answered = await get(app, "/items?limit=7");
    expect(answered.statusCode).toBe(200);
    // The response schema's serializer ran: the field it does not name is left out, the integer coerced.
    expect(answered.body).toBe('{"limit":7}');
  } finally {
    await app.close();
  }
});

test("a bad schema fails its route's first call when lazy, and the start with compileAll", async () => {
  const bad = { querystring: { type: "object", properties: { limit: { type: "no-such-type" } } } };
  const lazy = appWith(false, bad);
  try {
    await lazy.ready();
    expect((await get(lazy, "/items?limit=1")).statusCode).toBe(500);
  } finally {
    await lazy.close();
  }
  const eager = appWith(true, bad);
  await expect(eager.ready()).rejects.toThrow(/schema is invalid: data\/properties\/limit\/type/);
  await eager.close().catch(() => undefined);
});

test("every route schema of the gateway compiles", async () => {
  // Never connected: building and compiling the routes reads nothing from the database.
  const pool = new pg.Pool({ connectionString: "postgres://nobody@127.0.0.1:1/none" });
  const app = await buildGatewayApp({
    pool,
    verifier: createTokenVerifier({ issuer: "rdm", audience: "rdm", secret: "x".repeat(32) }),
    logger: createLogger("gateway", "warn"),
    databaseAvailable: () => true,
    isReady: () => true,
    compileSchemasAtStart: true,
  });
  try {
    await app.ready();
    expect(app.printRoutes()).toContain("releases");
  } finally {
    await app.close();
    await pool.end();
  }
});
