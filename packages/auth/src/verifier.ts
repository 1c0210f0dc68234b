import { createRemoteJWKSet, errors, importSPKI, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { LRUCache } from "lru-cache";
import { isRole, type Principal } from "./roles.js";

export type UnauthenticatedReason =
  | "missing_token"
  | "malformed_token"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "wrong_issuer"
  | "wrong_audience"
  | "invalid_claims"
  | "no_matching_key"
  | "key_source_unavailable";

/** The caller could not be authenticated; `reason` says why (safe to return to the caller). */
export class Unauthenticated extends Error {
  override readonly name = "Unauthenticated";
  constructor(
    readonly reason: UnauthenticatedReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface TokenVerifierOptions {
  /** Required `iss` claim. */
  issuer: string;
  /** Required `aud` claim (one of). */
  audience: string | string[];
  /** Shared secret for HS256 tokens. */
  secret?: string;
  /** SPKI PEM public key for RS256/ES256/EdDSA tokens. */
  publicKeyPem?: string;
  /** Algorithm of `publicKeyPem` (default RS256). */
  publicKeyAlgorithm?: string;
  /** JWKS endpoint; keys are fetched and cached by `kid`. */
  jwksUrl?: string;
  /** Allowed clock skew in seconds (default 30). */
  clockToleranceSeconds?: number;
  /** How many verified tokens to remember until they expire (default 10,000; 0: none). */
  cacheSize?: number;
  /** The current time (default: the system clock). */
  now?: () => Date;
}

export interface TokenVerifier {
  /** Verifies a compact JWS (without the `Bearer ` prefix) and returns its principal. */
  verify(token: string | undefined | null): Promise<Principal>;
}

type KeySource = { algorithms: string[]; key: Uint8Array | JWTVerifyGetKey | CryptoKey };

/**
 * Builds a verifier from the configured key sources. Every source is tried in order; a token
 * is accepted when one verifies it. At least one source is required: there is no "open" mode.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  if (!options.issuer) throw new Error("createTokenVerifier: issuer is required");
  if (!options.audience || (Array.isArray(options.audience) && options.audience.length === 0)) {
    throw new Error("createTokenVerifier: audience is required");
  }
  if (!options.secret && !options.publicKeyPem && !options.jwksUrl) {
    throw new Error("createTokenVerifier: at least one key source (secret, publicKeyPem or jwksUrl) is required");
  }
  const sources: Promise<KeySource>[] = [];
  if (options.secret) {
    sources.push(Promise.resolve({ algorithms: ["HS256"], key: new TextEncoder().encode(options.secret) }));
  }
  if (options.publicKeyPem) {
    const alg = options.publicKeyAlgorithm ?? "RS256";
    const imported = importSPKI(options.publicKeyPem, alg).then((key) => ({ algorithms: [alg], key }));
    imported.catch(() => undefined); // reported on first verify, not as an unhandled rejection
    sources.push(imported);
  }
  if (options.jwksUrl) {
    sources.push(
      Promise.resolve({
        algorithms: ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        key: createRemoteJWKSet(new URL(options.jwksUrl)),
      }),
    );
  }
  const verifyOptions = {
    issuer: options.issuer,
    audience: options.audience,
    clockTolerance: options.clockToleranceSeconds ?? 30,
    requiredClaims: ["sub", "exp"],
  };
  const now = options.now ?? (() => new Date());

  const check = async (token: string): Promise<{ principal: Principal; payload: JWTPayload }> => {
    let lastError: Unauthenticated | undefined;
    for (const source of sources) {
      const { key, algorithms } = await source;
      try {
        // Two calls because jwtVerify's overloads separate static keys from key resolvers.
        const { payload } =
          typeof key === "function"
            ? await jwtVerify(token, key, { ...verifyOptions, algorithms, currentDate: now() })
            : await jwtVerify(token, key, { ...verifyOptions, algorithms, currentDate: now() });
        return { principal: toPrincipal(payload), payload };
      } catch (error) {
        const mapped = toUnauthenticated(error);
        // Claim errors (expiry, issuer...) are final: the signature was good.
        if (mapped.reason !== "bad_signature" && mapped.reason !== "no_matching_key") throw mapped;
        lastError = mapped;
      }
    }
    throw lastError ?? new Unauthenticated("bad_signature", "token signature could not be verified");
  };

  // A caller sends the same token with every call: its signature and claims are checked once, and
  // the principal is remembered until the token expires (then it is checked again, and refused).
  const cacheSize = options.cacheSize ?? 10_000;
  const verified =
    cacheSize > 0 ? new LRUCache<string, { principal: Principal; expiresAtMs: number }>({ max: cacheSize }) : undefined;
  return {
    async verify(token) {
      if (!token) throw new Unauthenticated("missing_token", "no bearer token");
      const known = verified?.get(token);
      if (known && now().getTime() < known.expiresAtMs) return structuredClone(known.principal);
      const { principal, payload } = await check(token);
      // exp is required: jwtVerify has checked it is there and a number.
      const expiresAtMs = ((payload.exp as number) + verifyOptions.clockTolerance) * 1000;
      verified?.set(token, { principal: structuredClone(principal), expiresAtMs });
      return principal;
    },
  };
}

/** The longest subject taken, in characters: as long as the owner and actor fields that hold one. */
export const MAX_SUBJECT_LENGTH = 200;
/** A control character (C0, DEL or C1), or half of a surrogate pair alone: no part of a name. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const NOT_IN_A_SUBJECT = /[\u0000-\u001F\u007F-\u009F]|\p{Surrogate}/u;

/**
 * Why `sub` names no one the services take, or undefined. The subject is the actor recorded,
 * exactly, on every event: it must name someone, in text every consumer of the events stores
 * (see @rdm/proto's input rules), and briefly.
 */
export function subjectProblem(sub: unknown): string | undefined {
  if (typeof sub !== "string" || sub.trim() === "") return 'the "sub" claim must be a non-empty string';
  if (NOT_IN_A_SUBJECT.test(sub)) return 'the "sub" claim must be well-formed text without control characters';
  if ([...sub].length > MAX_SUBJECT_LENGTH) return `the "sub" claim must be at most ${MAX_SUBJECT_LENGTH} characters`;
  return undefined;
}

function toPrincipal(payload: JWTPayload): Principal {
  const problem = subjectProblem(payload.sub);
  if (problem) throw new Unauthenticated("invalid_claims", problem);
  const roles = payload.roles;
  if (roles !== undefined && !Array.isArray(roles)) {
    throw new Unauthenticated("invalid_claims", 'the "roles" claim must be an array of strings');
  }
  const groups = payload.groups;
  if (groups !== undefined && !(Array.isArray(groups) && groups.every((g) => typeof g === "string"))) {
    throw new Unauthenticated("invalid_claims", 'the "groups" claim must be an array of strings');
  }
  const principal: Principal = {
    subject: payload.sub as string,
    roles: (roles ?? []).filter(isRole),
    groups: groups ?? [],
  };
  if (typeof payload.name === "string") principal.name = payload.name;
  return principal;
}

function toUnauthenticated(error: unknown): Unauthenticated {
  if (error instanceof Unauthenticated) return error;
  const cause = { cause: error };
  if (error instanceof errors.JWTExpired) return new Unauthenticated("expired", "token has expired", cause);
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "iss") return new Unauthenticated("wrong_issuer", "token issuer is not trusted", cause);
    if (error.claim === "aud") return new Unauthenticated("wrong_audience", "token audience does not match", cause);
    if (error.claim === "nbf") return new Unauthenticated("not_yet_valid", "token is not yet valid", cause);
    return new Unauthenticated("invalid_claims", `token claim "${error.claim}" is invalid: ${error.reason}`, cause);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new Unauthenticated("bad_signature", "token signature is invalid", cause);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new Unauthenticated("bad_signature", "token algorithm is not accepted", cause);
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return new Unauthenticated("no_matching_key", "no trusted key matches the token", cause);
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return new Unauthenticated("key_source_unavailable", "the key set could not be loaded", cause);
  }
  if (
    error instanceof errors.JWSInvalid ||
    error instanceof errors.JWTInvalid ||
    error instanceof errors.JOSENotSupported
  ) {
    return new Unauthenticated("malformed_token", "token is malformed", cause);
  }
  if (error instanceof TypeError || error instanceof SyntaxError) {
    return new Unauthenticated("malformed_token", "token is malformed", cause);
  }
  return new Unauthenticated("key_source_unavailable", "token could not be verified", cause);
}
