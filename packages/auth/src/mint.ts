import { SignJWT } from "jose";
import type { Role } from "./roles.js";

export interface MintDevTokenOptions {
  subject: string;
  roles: Role[];
  /** HS256 shared secret; the verifier must be configured with the same secret. */
  secret: string;
  issuer: string;
  audience: string;
  name?: string;
  /** Approval boards and teams (the `groups` claim), e.g. ["cab"]. */
  groups?: string[];
  /** jose time span ("15m", "2h") or seconds; default "1h". */
  expiresIn?: string | number;
}

/**
 * Mints an HS256 token for local development and tests. The token still goes through the
 * same verification as any other: this is an explicit minting, never a bypass.
 */
export async function mintDevToken(options: MintDevTokenOptions): Promise<string> {
  const claims: Record<string, unknown> = { roles: options.roles };
  if (options.name) claims.name = options.name;
  if (options.groups) claims.groups = options.groups;
  const expiresIn = options.expiresIn ?? "1h";
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.subject)
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt()
    .setExpirationTime(typeof expiresIn === "number" ? Math.floor(Date.now() / 1000) + expiresIn : expiresIn)
    .sign(new TextEncoder().encode(options.secret));
}
