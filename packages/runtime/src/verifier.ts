import { createTokenVerifier, type TokenVerifier } from "@rdm/auth";

/** The token verifier a component's auth variables describe (secret, public key and/or JWKS URL). */
export function verifierFromConfig(config: {
  AUTH_ISSUER: string;
  AUTH_AUDIENCE: string;
  AUTH_JWT_SECRET?: string | undefined;
  AUTH_PUBLIC_KEY?: string | undefined;
  AUTH_JWKS_URL?: string | undefined;
}): TokenVerifier {
  return createTokenVerifier({
    issuer: config.AUTH_ISSUER,
    audience: config.AUTH_AUDIENCE,
    ...(config.AUTH_JWT_SECRET ? { secret: config.AUTH_JWT_SECRET } : {}),
    ...(config.AUTH_PUBLIC_KEY ? { publicKeyPem: config.AUTH_PUBLIC_KEY } : {}),
    ...(config.AUTH_JWKS_URL ? { jwksUrl: config.AUTH_JWKS_URL } : {}),
  });
}
