import { hasAnyRole, missingRoleMessage, READER_ROLES, type TokenVerifier } from "@rdm/auth";
import type { onRequestAsyncHookHandler } from "fastify";
import { sendProblem } from "./problems.js";

/**
 * The hook of the authenticated context: every route registered in that context needs a bearer
 * token with a role that may read. Public routes (health, docs) live outside it.
 */
export function authenticateReader(verifier: TokenVerifier): onRequestAsyncHookHandler {
  return async (request, reply) => {
    const header = request.headers.authorization;
    // The scheme is case-insensitive (RFC 7235), as on the gRPC side.
    const token = header && /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (!token) {
      return sendProblem(reply.header("www-authenticate", "Bearer"), 401, "Unauthorized", "missing bearer token");
    }
    try {
      const principal = await verifier.verify(token);
      if (!hasAnyRole(principal, [...READER_ROLES])) {
        return sendProblem(reply, 403, "Forbidden", missingRoleMessage(principal, READER_ROLES));
      }
      request.log = request.log.child({ subject: principal.subject });
    } catch (error) {
      return sendProblem(reply.header("www-authenticate", "Bearer"), 401, "Unauthorized", (error as Error).message);
    }
  };
}
