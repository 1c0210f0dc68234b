// A stream whose read fails: while the database is away it reads again at the next wake-up; any
// other failure would recur at every read, so the stream ends once instead of logging forever.
import type { AddressInfo } from "node:net";
import { createLogger } from "@rdm/observability";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import Fastify, { type FastifyInstance } from "fastify";
import type pg from "pg";
import { createEventStreams, type StreamEntry, serveEventStream } from "../src/http/sse.js";
import { openStream } from "./sse-client.js";

const CHANNEL = "sse_failed_read_test";
let db: TestDatabase;
let pool: pg.Pool;
let app: FastifyInstance;
let baseUrl: string;
/** What each stream's reads do, in turn, by path. */
const reads = new Map<string, (() => Promise<StreamEntry[]>)[]>();
const readCount = new Map<string, number>();

beforeAll(async () => {
  db = await createTestDatabase("gateway_sse_failed_read");
  pool = await openDatabase(db.url);
  app = Fastify();
  const streams = createEventStreams(app, pool, createLogger("gateway", "fatal"));
  app.get("/:name", (request, reply) => {
    const { name } = request.params as { name: string };
    serveEventStream(request, reply, {
      streams,
      channel: CHANNEL,
      after: 0,
      name,
      read: async () => {
        readCount.set(name, (readCount.get(name) ?? 0) + 1);
        return (reads.get(name)?.shift() ?? (async () => []))();
      },
    });
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app.close();
  await pool.end();
  await db.drop();
});

test("a read the database refused for the request's value ends the stream after one attempt", async () => {
  reads.set("refused", [
    async () => {
      throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
        name: "error",
        code: "22021",
      });
    },
  ]);
  const stream = await openStream(baseUrl, "/refused", {});
  await expect(stream.nextEvent()).rejects.toThrow("the stream ended");
  expect(readCount.get("refused")).toBe(1);
});

test("a read that found the database away is made again at the next wake-up", async () => {
  reads.set("away", [
    async () => {
      throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    },
    async () => [{ seq: 1, event: "entry", data: { n: 1 } }],
  ]);
  const stream = await openStream(baseUrl, "/away", {});
  try {
    let received = false;
    const next = stream.nextEvent().finally(() => {
      received = true;
    });
    // Wakes the stream as a projected entry would (again until it listens), well before its
    // keep-alive (5 s) would.
    const deadline = Date.now() + 10_000;
    while (!received) {
      if (Date.now() > deadline) throw new Error("the stream sent no event within 10 s of being woken");
      await pool.query(`NOTIFY ${CHANNEL}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await next).toEqual({ id: 1, event: "entry", data: { n: 1 } });
  } finally {
    stream.close();
  }
});
