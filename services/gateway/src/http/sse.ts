import type { ServerResponse } from "node:http";
import { isDatabaseUnavailable } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type pg from "pg";
import { createNotificationHub, type NotificationHub } from "./notification-hub.js";
import { badRequest } from "./problems.js";

/** One entry of a stream: `seq` is its SSE id (resume point), `event` its SSE event name. */
export interface StreamEntry {
  seq: number;
  event: string;
  data: unknown;
}

/** The open streams of the server, and the NOTIFY channels that wake them. */
export interface EventStreams {
  /** One LISTEN connection per channel, shared by every stream of that channel. */
  hub(channel: string): NotificationHub;
  track(res: ServerResponse): () => void;
}

/** Streams never end by themselves: they are ended when the server closes, or it would wait forever. */
export function createEventStreams(app: FastifyInstance, pool: pg.Pool, logger: Logger): EventStreams {
  const open = new Set<ServerResponse>();
  const hubs = new Map<string, NotificationHub>();
  app.addHook("preClose", async () => {
    for (const res of open) res.end();
  });
  app.addHook("onClose", async () => {
    await Promise.all([...hubs.values()].map((hub) => hub.close()));
  });
  return {
    hub(channel) {
      let hub = hubs.get(channel);
      if (!hub) {
        hub = createNotificationHub(pool, channel, logger);
        hubs.set(channel, hub);
      }
      return hub;
    },
    track(res) {
      open.add(res);
      return () => open.delete(res);
    },
  };
}

/** Query parameter of every stream: where to start when the client sends no Last-Event-ID. */
export const afterSchema = {
  type: "integer",
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: "start after this seq (default: now); a Last-Event-ID header takes precedence",
} as const;

/**
 * Where a stream starts. A reconnecting EventSource sends the id of the last event it saw, and
 * keeps its URL (and `after`): the header says where to resume. It sends none (or an empty one)
 * before its first event. Undefined: the header is not an id of the stream (answered 400).
 */
export async function resumePoint(
  request: FastifyRequest,
  after: number | undefined,
  newest: () => Promise<number>,
): Promise<number | undefined> {
  const lastEventId = request.headers["last-event-id"];
  if (lastEventId) {
    if (typeof lastEventId !== "string" || !/^\d+$/.test(lastEventId) || !Number.isSafeInteger(Number(lastEventId)))
      return undefined;
    return Number(lastEventId);
  }
  return after ?? (await newest());
}

export interface StreamOptions {
  streams: EventStreams;
  channel: string;
  after: number;
  /** Up to `limit` entries after `after`, in seq order. */
  read(after: number, limit: number): Promise<StreamEntry[]>;
  /** Names the stream in the log when a read fails. */
  name: string;
}

const PAGE = 500;
const KEEP_ALIVE_MS = 5_000;

/**
 * Serves Server-Sent Events: every entry after `after`, then each new one as it is projected.
 * Woken by the projection's NOTIFY; the keep-alive timer also polls, covering notifications
 * missed meanwhile.
 */
export function serveEventStream(request: FastifyRequest, reply: FastifyReply, options: StreamOptions): void {
  // Answered meanwhile (503: the database went while its start was read): nothing to stream.
  if (reply.sent) return;
  let after = options.after;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  // HEAD asks for the headers of the stream alone: they are the answer.
  if (request.method === "HEAD") {
    res.end();
    return;
  }
  res.write(": connected\n\n");
  const untrack = options.streams.track(res);
  let closed = false;
  let polling = false;
  let again = false;
  const poll = async (): Promise<void> => {
    if (closed) return;
    if (polling) {
      again = true; // woken mid-poll: look once more when this one is done
      return;
    }
    polling = true;
    again = false;
    try {
      const entries = await options.read(after, PAGE);
      for (const entry of entries) {
        if (closed || res.destroyed) return;
        const flushed = res.write(`id: ${entry.seq}\nevent: ${entry.event}\ndata: ${JSON.stringify(entry.data)}\n\n`);
        after = entry.seq;
        // A client reading slowly (or not at all) holds the socket's buffers and one entry, not
        // the rest of the history: the next entry waits until it has taken what was sent.
        if (!flushed) await drained(res);
      }
      if (entries.length === PAGE) again = true;
    } catch (error) {
      // The database away: the next poll (keep-alive or NOTIFY) tries again. Anything else would
      // fail every poll alike: end the stream once, rather than log it every few seconds.
      if (isDatabaseUnavailable(error)) {
        request.log.warn({ err: error }, `${options.name} poll failed; retrying`);
      } else {
        request.log.error({ err: error }, `${options.name} poll failed; ending the stream`);
        stop();
        res.end();
      }
    } finally {
      polling = false;
    }
    if (again) return poll();
  };
  const unsubscribe = options.streams.hub(options.channel).subscribe(() => void poll());
  const timer = setInterval(() => {
    void poll();
    if (!res.writableNeedDrain) res.write(": keep-alive\n\n");
  }, KEEP_ALIVE_MS);
  const stop = () => {
    if (closed) return;
    closed = true;
    untrack();
    clearInterval(timer);
    unsubscribe();
  };
  void poll();
  request.raw.on("close", stop);
}

/** Until `res` has flushed what it holds, or closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (!res.writableNeedDrain || res.destroyed) return resolve();
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

export const badLastEventId = (reply: FastifyReply) =>
  badRequest(reply, "Last-Event-ID must be the id of an event of this stream");
