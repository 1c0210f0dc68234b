import { hasAnyRole, READER_ROLES, type TokenVerifier } from "@rdm/auth";
import type { onRequestAsyncHookHandler } from "fastify";
import { problem } from "./problems.js";

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
      return reply
        .code(401)
        .header("www-authenticate", "Bearer")
        .send(problem(401, "Unauthorized", "missing bearer token"));
    }
    try {
      const principal = await verifier.verify(token);
      if (!hasAnyRole(principal, [...READER_ROLES])) {
        // Worded as the gRPC services word it: admin is allowed everything.
        const roles = [...READER_ROLES, "admin"].join(", ");
        const has = principal.roles.join(", ") || "none";
        return reply
          .code(403)
          .send(problem(403, "Forbidden", `requires one of the roles: ${roles} (caller has: ${has})`));
      }
      request.log = request.log.child({ subject: principal.subject });
    } catch (error) {
      return reply
        .code(401)
        .header("www-authenticate", "Bearer")
        .send(problem(401, "Unauthorized", (error as Error).message));
    }
  };
}
