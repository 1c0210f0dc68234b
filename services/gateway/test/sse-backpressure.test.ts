// An event stream writes no faster than its client reads: however long the history, the server
// holds the socket's buffers and one entry for a slow client, not the pages after it (a hundred
// clients asking for a long history from the start took the gateway from 110 to 606 MB).
import type { ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger } from "@rdm/observability";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase } from "@rdm/testkit";
import Fastify from "fastify";
import { createEventStreams, serveEventStream } from "../src/http/sse.js";
import { openStream } from "./sse-client.js";

const PAGE = 500; // what the stream reads at a time (sse.ts)
const PAGES = 40;
const text = "x".repeat(2_000); // 40 pages of 1 MB: more than loopback's socket buffers take

test("a stream reads its next page only once the client has taken what was written", async () => {
  const db = await createTestDatabase("gateway_sse_backpressure");
  const pool = await openDatabase(db.url);
  const app = Fastify();
  const streams = createEventStreams(app, pool, createLogger("gateway", "warn"));
  const waitingAtEachRead: number[] = [];
  app.get("/stream", (request, reply) => {
    const res: ServerResponse = reply.raw;
    serveEventStream(request, reply, {
      streams,
      channel: "sse_backpressure_test",
      after: 0,
      name: "test stream",
      read: async (after, limit) => {
        waitingAtEachRead.push(res.writableLength);
        const last = Math.min(after + limit, PAGES * PAGE);
        return Array.from({ length: Math.max(0, last - after) }, (_, i) => ({
          seq: after + 1 + i,
          event: "entry",
          data: { text },
        }));
      },
    });
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  try {
    const stream = await openStream(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, "/stream", {});
    let inOrder = 0;
    for (let seq = 1; seq <= PAGES * PAGE; seq++) if ((await stream.nextEvent()).id === seq) inOrder++;
    stream.close();
    expect(inOrder).toBe(PAGES * PAGE);
    expect(waitingAtEachRead.length).toBeGreaterThanOrEqual(PAGES);
    // Below the response's 16 KiB high-water mark plus an entry; 40 MB were sent in all.
    expect(Math.max(...waitingAtEachRead)).toBeLessThan(64 * 1024);
  } finally {
    await app.close();
    await pool.end();
    await db.drop();
  }
});
