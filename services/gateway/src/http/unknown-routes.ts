import type { TokenVerifier } from "@rdm/auth";
import type { FastifyInstance } from "fastify";
import FindMyWay from "find-my-way";
import { authenticateReader } from "./authenticated.js";
import { sendProblem } from "./problems.js";

/**
 * What no route takes is answered as the authenticated API would be: an anonymous caller (or one
 * whose role may not read) learns nothing about which routes exist (401/403); a reader gets 404,
 * or 405 with the methods it takes for a known path asked with another (the API only reads).
 * Call before any route is added.
 */
export function answerUnknownRoutes(app: FastifyInstance, verifier: TokenVerifier, maxParamLength: number): void {
  const authenticate = authenticateReader(verifier);
  const methodsAt = allowedMethods(app, maxParamLength);
  app.setNotFoundHandler(async (request, reply) => {
    await authenticate.call(app, request, reply);
    if (reply.sent) return reply;
    const allowed = methodsAt(request.url);
    if (allowed.length > 0) {
      const detail = `${request.method} is not allowed here; ${allowed.join(", ")} ${allowed.length > 1 ? "are" : "is"}`;
      return sendProblem(reply.header("allow", allowed.join(", ")), 405, "Method Not Allowed", detail);
    }
    return sendProblem(reply, 404, "Not Found", `no route ${request.method} ${request.url}`);
  });
}

/**
 * The methods the app's routes take at a path (for 405's `Allow`, RFC 9110). Fastify does not
 * expose its router for a look-up by path, so the routes are added to a router of the same kind
 * as they are registered.
 */
function allowedMethods(app: FastifyInstance, maxParamLength: number): (url: string) => string[] {
  const router = FindMyWay({ maxParamLength });
  const methods = new Set<FindMyWay.HTTPMethod>();
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat() as FindMyWay.HTTPMethod[]) {
      if (router.hasRoute(method, route.url)) continue;
      router.on(method, route.url, () => {});
      methods.add(method);
    }
  });
  return (url) => {
    const path = url.split("?", 1)[0] ?? url;
    return [...methods].filter((method) => router.find(method, path) !== null).sort();
  };
}
