import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { createTokenVerifier, hasAnyRole, mintDevToken, ROLES, Unauthenticated } from "../src/index.js";

const issuer = "rdm-test";
const audience = "rdm";
const secret = "a-test-secret-that-is-long-enough-for-hs256";

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(Unauthenticated);
    return (error as Unauthenticated).reason;
  }
  throw new Error("expected verification to fail");
}

describe("roles", () => {
  test("the platform roles: eight for people, executor for deployment agents", () => {
    expect(ROLES).toEqual([
      "release-manager",
      "release-coordinator",
      "approver",
      "change-manager",
      "config-manager",
      "deployer",
      "viewer",
      "admin",
      "executor",
    ]);
  });

  test("hasAnyRole: one of the allowed roles, or admin", () => {
    expect(hasAnyRole({ subject: "a", roles: ["viewer"], groups: [] }, ["viewer", "approver"])).toBe(true);
    expect(hasAnyRole({ subject: "a", roles: ["deployer"], groups: [] }, ["viewer", "approver"])).toBe(false);
    expect(hasAnyRole({ subject: "a", roles: [], groups: [] }, ["viewer"])).toBe(false);
    expect(hasAnyRole({ subject: "a", roles: ["admin"], groups: [] }, ["release-manager"])).toBe(true);
    expect(hasAnyRole({ subject: "a", roles: ["admin"], groups: [] }, [])).toBe(true);
  });
});

describe("createTokenVerifier with an HS256 secret", () => {
  const verifier = createTokenVerifier({ issuer, audience, secret });

  test("a minted token verifies to its principal; unknown roles are dropped", async () => {
    const token = await mintDevToken({
      subject: "alice",
      name: "Alice",
      roles: ["release-manager", "approver", "not-a-role" as never],
      groups: ["cab"],
      secret,
      issuer,
      audience,
    });
    await expect(verifier.verify(token)).resolves.toEqual({
      subject: "alice",
      name: "Alice",
      roles: ["release-manager", "approver"],
      groups: ["cab"],
    });
  });

  test("no groups claim -> no groups; a groups claim that is not a string array -> invalid_claims", async () => {
    const plain = await mintDevToken({ subject: "bob", roles: ["viewer"], secret, issuer, audience });
    await expect(verifier.verify(plain)).resolves.toMatchObject({ subject: "bob", groups: [] });
    const bad = await new SignJWT({ roles: [], groups: "cab" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("bob")
      .setIssuer(issuer)
      .setAudience(audience)
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret));
    expect(await reasonOf(verifier.verify(bad))).toBe("invalid_claims");
  });

  test("missing token", async () => {
    expect(await reasonOf(verifier.verify(undefined))).toBe("missing_token");
    expect(await reasonOf(verifier.verify(""))).toBe("missing_token");
  });

  test("malformed token", async () => {
    expect(await reasonOf(verifier.verify("not.a.jwt"))).toBe("malformed_token");
    expect(await reasonOf(verifier.verify("garbage"))).toBe("malformed_token");
  });

  test("expired token", async () => {
    const token = await mintDevToken({ subject: "a", roles: [], secret, issuer, audience, expiresIn: -120 });
    expect(await reasonOf(verifier.verify(token))).toBe("expired");
  });

  test("a verified token is remembered until it expires: a copy of its principal each time, then expired", async () => {
    const token = await mintDevToken({ subject: "bob", roles: ["viewer"], secret, issuer, audience, expiresIn: 60 });
    let now = Date.now();
    const clocked = createTokenVerifier({ issuer, audience, secret, now: () => new Date(now) });
    const first = await clocked.verify(token);
    first.roles.push("admin");
    await expect(clocked.verify(token)).resolves.toEqual({ subject: "bob", roles: ["viewer"], groups: [] });
    now += 120_000; // past exp and the 30 s tolerance
    expect(await reasonOf(clocked.verify(token))).toBe("expired");
  });

  test("bad signature (other secret)", async () => {
    const token = await mintDevToken({ subject: "a", roles: [], secret: `${secret}-other`, issuer, audience });
    expect(await reasonOf(verifier.verify(token))).toBe("bad_signature");
  });

  test("tampered payload", async () => {
    const token = await mintDevToken({ subject: "a", roles: ["viewer"], secret, issuer, audience });
    const [header, , signature] = token.split(".");
    const forged = Buffer.from(
      JSON.stringify({ sub: "a", roles: ["admin"], iss: issuer, aud: audience, exp: 9e9 }),
    ).toString("base64url");
    expect(await reasonOf(verifier.verify(`${header}.${forged}.${signature}`))).toBe("bad_signature");
  });

  test("wrong issuer and wrong audience", async () => {
    const wrongIssuer = await mintDevToken({ subject: "a", roles: [], secret, issuer: "someone-else", audience });
    expect(await reasonOf(verifier.verify(wrongIssuer))).toBe("wrong_issuer");
    const wrongAudience = await mintDevToken({ subject: "a", roles: [], secret, issuer, audience: "other" });
    expect(await reasonOf(verifier.verify(wrongAudience))).toBe("wrong_audience");
  });

  test("an unsigned (alg none) token is refused", async () => {
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const payload = Buffer.from(
      JSON.stringify({ sub: "a", roles: ["admin"], iss: issuer, aud: audience, exp: 9e9 }),
    ).toString("base64url");
    await expect(verifier.verify(`${header}.${payload}.`)).rejects.toBeInstanceOf(Unauthenticated);
  });

  test("a token without sub or exp is refused", async () => {
    const key = new TextEncoder().encode(secret);
    const noSub = await new SignJWT({ roles: [] })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(issuer)
      .setAudience(audience)
      .setExpirationTime("1h")
      .sign(key);
    expect(await reasonOf(verifier.verify(noSub))).toBe("invalid_claims");
    const noExp = await new SignJWT({ roles: [] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("a")
      .setIssuer(issuer)
      .setAudience(audience)
      .sign(key);
    expect(await reasonOf(verifier.verify(noExp))).toBe("invalid_claims");
    // Present but naming no one (events would record an empty actor), or not text every consumer
    // of the events stores (control characters, a lone surrogate), or longer than a name is.
    for (const sub of [
      " ",
      42,
      "a\u0000b",
      "a\u0001b",
      "mallory\u001b[2J",
      "tab\there",
      "a\u007f",
      "c1\u0085x",
      "\u009f",
      "x\ud800y",
      "z".repeat(201),
    ]) {
      const blank = await new SignJWT({ roles: [], sub } as never)
        .setProtectedHeader({ alg: "HS256" })
        .setIssuer(issuer)
        .setAudience(audience)
        .setExpirationTime("1h")
        .sign(key);
      expect(await reasonOf(verifier.verify(blank))).toBe("invalid_claims");
    }
  });

  test("a subject of any script up to 200 characters is taken as it is", async () => {
    for (const sub of ["olivia", "Ölçer Ñandú 李小龙 🚀", `${"o".repeat(199)}🚀`, "cn=Olivia Ops,ou=people"]) {
      const token = await new SignJWT({ roles: [] })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(sub)
        .setIssuer(issuer)
        .setAudience(audience)
        .setExpirationTime("1h")
        .sign(new TextEncoder().encode(secret));
      expect((await verifier.verify(token)).subject).toBe(sub);
    }
  });

  test("roles must be an array", async () => {
    const token = await new SignJWT({ roles: "admin" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("a")
      .setIssuer(issuer)
      .setAudience(audience)
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode(secret));
    expect(await reasonOf(verifier.verify(token))).toBe("invalid_claims");
  });
});

describe("createTokenVerifier configuration", () => {
  test("at least one key source is required", () => {
    expect(() => createTokenVerifier({ issuer, audience })).toThrow(/at least one key source/);
  });
});

describe("createTokenVerifier with public keys", () => {
  test("RS256 with a PEM public key; an HS256 token signed with the PEM as secret is refused", async () => {
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    const publicKeyPem = await exportSPKI(publicKey);
    const verifier = createTokenVerifier({ issuer, audience, publicKeyPem });
    const token = await new SignJWT({ roles: ["deployer"] })
      .setProtectedHeader({ alg: "RS256" })
      .setSubject("bob")
      .setIssuer(issuer)
      .setAudience(audience)
      .setExpirationTime("5m")
      .sign(privateKey);
    await expect(verifier.verify(token)).resolves.toEqual({ subject: "bob", roles: ["deployer"], groups: [] });

    // Algorithm confusion: the public key used as an HMAC secret must not verify.
    const confused = await mintDevToken({ subject: "eve", roles: ["admin"], secret: publicKeyPem, issuer, audience });
    await expect(verifier.verify(confused)).rejects.toBeInstanceOf(Unauthenticated);
  });

  describe("JWKS URL", () => {
    let server: Server;
    let jwksUrl: string;
    let privateKey: CryptoKey;

    beforeAll(async () => {
      const pair = await generateKeyPair("ES256");
      privateKey = pair.privateKey as CryptoKey;
      const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
      server = createServer((_req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    test("verifies tokens by kid and refuses unknown kids", async () => {
      const verifier = createTokenVerifier({ issuer, audience, jwksUrl });
      const sign = (kid: string) =>
        new SignJWT({ roles: ["viewer"] })
          .setProtectedHeader({ alg: "ES256", kid })
          .setSubject("carol")
          .setIssuer(issuer)
          .setAudience(audience)
          .setExpirationTime("5m")
          .sign(privateKey);
      await expect(verifier.verify(await sign("k1"))).resolves.toEqual({
        subject: "carol",
        roles: ["viewer"],
        groups: [],
      });
      expect(await reasonOf(verifier.verify(await sign("unknown")))).toBe("no_matching_key");
    });

    test("secret and JWKS together: either source may verify", async () => {
      const verifier = createTokenVerifier({ issuer, audience, jwksUrl, secret });
      const dev = await mintDevToken({ subject: "dev", roles: ["admin"], secret, issuer, audience });
      await expect(verifier.verify(dev)).resolves.toMatchObject({ subject: "dev" });
    });
  });
});
