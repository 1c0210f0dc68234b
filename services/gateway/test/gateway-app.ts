import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createTokenVerifier, mintDevToken, type Role } from "@rdm/auth";
import { createLogger } from "@rdm/observability";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { buildGatewayApp, type GatewayAppOptions } from "../src/app.js";

/** The gateway's HTTP app listening on loopback, as the route tests read it. */
export interface TestGateway {
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `Bearer <token>` of a viewer. */
  bearer: string;
  /** A token the gateway takes, for other roles. */
  token(subject: string, roles: Role[]): Promise<string>;
}

/** The gateway's HTTP app over `pool` (its tables migrated), ready and its database available unless told. */
export async function listeningGateway(
  pool: pg.Pool,
  options: Partial<Pick<GatewayAppOptions, "databaseAvailable" | "onDatabaseLost" | "logger">> = {},
): Promise<TestGateway> {
  const secret = randomUUID() + randomUUID();
  const auth = { issuer: "rdm", audience: "rdm", secret };
  const app = await buildGatewayApp({
    pool,
    verifier: createTokenVerifier(auth),
    logger: createLogger("gateway", "warn"),
    databaseAvailable: () => true,
    isReady: () => true,
    ...options,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const token = (subject: string, roles: Role[]) => mintDevToken({ subject, roles, ...auth });
  return {
    app,
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    bearer: `Bearer ${await token("vera", ["viewer"])}`,
    token,
  };
}
