// The interceptor chain through real gRPC: a service's own interceptor, the server span recorded
// with no exporter configured, and the latency histogram as Prometheus scrapes it.
import { randomUUID } from "node:crypto";
import { createTokenVerifier, mintDevToken, type Role } from "@rdm/auth";
import { startTelemetry, type Telemetry } from "@rdm/observability";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import {
  type CallContext,
  createGrpcClient,
  createGrpcServer,
  errorDetails,
  FailedPrecondition,
  type GrpcServer,
  GrpcStatus,
  type Interceptor,
} from "../src/index.js";
import { callWithoutTrace, captureLogger, partialRegistration } from "./support.js";

const issuer = "rdm-interceptor-test";
const audience = "rdm";
const secret = "interceptor-test-secret-long-enough-for-hs256!";
const token = (roles: Role[], subject = `user-${randomUUID()}`) =>
  mintDevToken({ subject, roles, secret, issuer, audience });

/** What the service's own interceptor saw, by request title. */
const seenByInterceptor = new Map<string, { subject: string | undefined; requestTitle: string }>();
const handled: { title: string; ctx: CallContext }[] = [];
/** A service's own interceptor: records what it sees, refuses one title, and tags the answer. */
const auditTitles: Interceptor = (next) => async (request, ctx) => {
  if (request.kind !== "unary") return next(request, ctx);
  const title = (request.message as { title?: string }).title ?? "";
  seenByInterceptor.set(title, { subject: ctx.principal?.subject, requestTitle: title });
  if (title.startsWith("forbidden")) {
    throw new FailedPrecondition("titles starting with 'forbidden' are refused by the audit", []);
  }
  const response = (await next(request, ctx)) as { release?: { title?: string } };
  return { ...response, release: { ...response.release, title: `${response.release?.title} (audited)` } };
};

let telemetry: Telemetry;
let server: GrpcServer;
let address: string;

beforeAll(async () => {
  // No span processor and no exporter: spans must still be recorded and propagated.
  telemetry = await startTelemetry({ serviceName: "grpc-interceptors", metrics: { host: "127.0.0.1", port: 0 } });
  server = createGrpcServer({
    logger: captureLogger(),
    verifier: createTokenVerifier({ issuer, audience, secret }),
    services: [
      {
        ...partialRegistration(
          ReleaseService,
          {
            async registerRelease(request, ctx) {
              handled.push({ title: request.title, ctx });
              return { release: { releaseId: randomUUID(), title: request.title } };
            },
          },
          { registerRelease: ["release-manager"] },
        ),
        interceptors: [auditTitles],
      },
    ],
  });
  address = `127.0.0.1:${await server.listen("127.0.0.1", 0)}`;
});

afterAll(async () => {
  await server.shutdown();
  await telemetry.shutdown();
});

const registration = (title: string) => ({ requestId: randomUUID(), title, type: ReleaseType.MINOR, owner: "olivia" });

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return errorDetails(error);
  }
  throw new Error("expected the call to fail");
}

test("a service's own interceptor runs after authentication and validation and wraps the handler", async () => {
  const subject = `rm-${randomUUID()}`;
  const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"], subject) });
  const title = `Audited ${randomUUID()}`;
  const response = await client.registerRelease(registration(title));
  expect(response.release?.title).toBe(`${title} (audited)`);
  expect(seenByInterceptor.get(title)).toEqual({ subject, requestTitle: title });

  const refused = await failure(client.registerRelease(registration(`forbidden ${randomUUID()}`)));
  expect(refused.code).toBe(GrpcStatus.FAILED_PRECONDITION);
  expect(handled.some((h) => h.title.startsWith("forbidden"))).toBe(false);

  // Invalid (empty title) and unauthenticated requests are stopped before it.
  const invalid = await failure(client.registerRelease(registration("")));
  expect(invalid.code).toBe(GrpcStatus.INVALID_ARGUMENT);
  expect(seenByInterceptor.has("")).toBe(false);
  const anonymous = createGrpcClient(ReleaseService, address);
  const unauthenticatedTitle = `Anonymous ${randomUUID()}`;
  expect((await failure(anonymous.registerRelease(registration(unauthenticatedTitle)))).code).toBe(
    GrpcStatus.UNAUTHENTICATED,
  );
  expect(seenByInterceptor.has(unauthenticatedTitle)).toBe(false);
  client.close();
  anonymous.close();
});

test("with no exporter configured, a call from a caller without a trace gets a recording server span", async () => {
  const title = `Untraced ${randomUUID()}`;
  const callerToken = await token(["release-manager"]);
  await callWithoutTrace(address, ReleaseService.method.registerRelease, registration(title), callerToken);
  const traceparent = handled.find((h) => h.title === title)?.ctx.traceparent;
  expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  expect(traceparent?.split("-")[1]).not.toBe("0".repeat(32));
});

test("/metrics serves the call latency histogram by method and status code", async () => {
  const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
  await client.registerRelease(registration(`Measured ${randomUUID()}`));
  await failure(client.registerRelease(registration("")));
  const response = await fetch(`http://127.0.0.1:${telemetry.metricsPort}/metrics`);
  expect(response.status).toBe(200);
  const text = await response.text();
  const count = (code: number) =>
    new RegExp(
      `^rpc_server_duration_count\\{[^}]*rpc_method="RegisterRelease"[^}]*rpc_grpc_status_code="${code}"[^}]*\\} [1-9]`,
      "m",
    );
  expect(text).toMatch(/^# TYPE rpc_server_duration histogram$/m);
  expect(text).toMatch(count(GrpcStatus.OK));
  expect(text).toMatch(count(GrpcStatus.INVALID_ARGUMENT));
  expect((await fetch(`http://127.0.0.1:${telemetry.metricsPort}/other`)).status).toBe(404);
  client.close();
});
