import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { databaseUnavailable } from "./problems.js";

/**
 * While the database is known to be gone (or hanging), every request of `api` is answered 503 at
 * once rather than after a wait for it; and the requests already waiting on it when it goes get
 * the same. An event stream, which answered at its start, is left to its own handling.
 *
 * The handler of a request answered so runs on until its query returns or fails; what it sends
 * then is dropped, rather than logged by Fastify as a reply sent twice, and a failure is not
 * logged.
 */
export function refuseWhileDatabaseAway(
  api: FastifyInstance,
  databaseAvailable: () => boolean,
  onDatabaseLost: ((listener: () => void) => void) | undefined,
): void {
  const waiting = new Map<FastifyRequest, FastifyReply>();
  api.addHook("preHandler", async (request, reply) => {
    if (databaseAvailable()) {
      waiting.set(request, reply);
      // Answered, or the connection gone (an event stream's end included): no longer waiting.
      reply.raw.once("close", () => waiting.delete(request));
      return;
    }
    request.log.info("request refused: database unavailable");
    return databaseUnavailable(reply);
  });
  onDatabaseLost?.(() => {
    for (const [request, reply] of waiting) {
      waiting.delete(request);
      if (reply.sent) continue;
      request.log.warn("database lost while the request waited on it");
      // Nor is its late failure (the usual end when the database is really gone) logged as an
      // error of a request already answered: the 503 and the line above said it.
      reply.raw.once("finish", () => {
        reply.log.level = "silent";
      });
      void databaseUnavailable(reply);
      reply.send = () => reply;
    }
  });
}
