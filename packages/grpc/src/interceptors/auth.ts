import {
  Unauthenticated as AuthUnauthenticated,
  hasAnyRole,
  missingRoleMessage,
  permittedRoles,
  type TokenVerifier,
} from "@rdm/auth";
import { PermissionDenied, Unauthenticated } from "../errors.js";
import { firstMetadataValue, type Interceptor } from "../interceptor.js";

/**
 * Verifies `authorization: Bearer <jwt>` (scheme case-insensitive) with the `@rdm/auth` verifier
 * and sets `ctx.principal`; the token goes no further (removed from `ctx.metadata`). Missing or
 * invalid: UNAUTHENTICATED with an ErrorInfo reason (`MISSING_TOKEN`, `EXPIRED`, ...).
 */
export function authenticateCallers(verifier: TokenVerifier): Interceptor {
  return (next) => async (request, ctx) => {
    const header = firstMetadataValue(ctx.metadata, "authorization");
    if (!header)
      throw new Unauthenticated("unauthenticated: no bearer token in the authorization metadata", "missing_token");
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match)
      throw new Unauthenticated('unauthenticated: authorization metadata must be "Bearer <token>"', "malformed_token");
    try {
      ctx.principal = await verifier.verify(match[1]);
    } catch (error) {
      if (error instanceof AuthUnauthenticated)
        throw new Unauthenticated(`unauthenticated: ${error.message}`, error.reason);
      throw error;
    }
    const metadata = ctx.metadata.clone();
    metadata.remove("authorization");
    ctx.metadata = metadata;
    return next(request, ctx);
  };
}

/** The principal needs one of the method's roles (`admin` always passes); else PERMISSION_DENIED naming them. */
export function authorizeRoles(): Interceptor {
  return (next) => async (request, ctx) => {
    const { principal, roles, method } = ctx;
    if (!principal) throw new Unauthenticated("unauthenticated: no caller was authenticated", "missing_token");
    if (!hasAnyRole(principal, roles)) {
      throw new PermissionDenied(`${method.name} ${missingRoleMessage(principal, roles)}`, "MISSING_ROLE", {
        required_roles: permittedRoles(roles).join(","),
      });
    }
    return next(request, ctx);
  };
}
