import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createTokenVerifier, mintDevToken, type Role } from "@rdm/auth";
import { inSpan, startTelemetry, type Telemetry } from "@rdm/observability";
import { descriptorImagePath } from "@rdm/proto";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { statusTrailer } from "../src/errors.js";
import {
  Aborted,
  AlreadyExists,
  type CallContext,
  checkHealth,
  createGrpcClient,
  createGrpcServer,
  errorDetails,
  FailedPrecondition,
  type GrpcServer,
  GrpcStatus,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  STATUS_DETAILS_KEY,
  toStatus,
} from "../src/index.js";
import { captureLogger, partialRegistration } from "./support.js";

const issuer = "rdm-grpc-test";
const audience = "rdm";
const secret = "grpc-test-secret-long-enough-for-hs256!";

/** Same shape as @rdm/eventstore's error; the server matches it by name. */
class WrongExpectedVersion extends Error {
  override readonly name = "WrongExpectedVersion";
  constructor(
    readonly streamId: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`stream ${streamId}: expected version ${expected}, actual ${actual}`);
  }
}

interface EndedSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
}
const spans: EndedSpan[] = [];
const spanProcessor = {
  onStart: () => undefined,
  onEnd: (span: {
    name: string;
    kind: number;
    spanContext(): { traceId: string; spanId: string };
    parentSpanContext?: { spanId: string };
    parentSpanId?: string;
  }) => {
    const { traceId, spanId } = span.spanContext();
    spans.push({
      name: span.name,
      kind: span.kind,
      traceId,
      spanId,
      parentSpanId: span.parentSpanContext?.spanId ?? span.parentSpanId,
    });
  },
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};

const token = (roles: Role[], subject = `user-${randomUUID()}`) =>
  mintDevToken({ subject, roles, secret, issuer, audience });

interface ReflectionResponse {
  list_services_response: { service: { name: string }[] };
  file_descriptor_response: { file_descriptor_proto: Buffer[] };
}

interface HealthClient extends grpc.Client {
  Check(
    request: { service: string },
    callback: (error: grpc.ServiceError | null, response: { status: string }) => void,
  ): void;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}
interface ReflectionClient extends grpc.Client {
  ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionResponse>;
}

/** A grpc-js client class for a service of a proto-loader package definition. */
function clientClass<T extends grpc.Client>(
  definition: protoLoader.PackageDefinition,
  service: string,
): new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => T {
  const clientConstructor = grpc.makeGenericClientConstructor(definition[service] as grpc.ServiceDefinition, service);
  return clientConstructor as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
  ) => T;
}

const loaderOptions = { keepCase: true, enums: String, longs: String, defaults: true };
const logger = captureLogger();
const registerCalls: { title: string; ctx: CallContext }[] = [];
/** Behaviour of GetRelease per release id: each test registers its own ids. */
const getBehaviour = new Map<string, (ctx: CallContext) => unknown>();
let telemetry: Telemetry;
let server: GrpcServer;
let address: string;

beforeAll(async () => {
  telemetry = await startTelemetry({ serviceName: "grpc-test", spanProcessors: [spanProcessor as never] });
  server = createGrpcServer({
    logger,
    verifier: createTokenVerifier({ issuer, audience, secret }),
    reflection: { imagePath: descriptorImagePath },
    shutdownGraceMs: 2_000,
    services: [
      partialRegistration(
        ReleaseService,
        {
          async registerRelease(request, ctx) {
            registerCalls.push({ title: request.title, ctx });
            return { release: { releaseId: randomUUID(), title: request.title, registeredBy: ctx.principal.subject } };
          },
          async getRelease(request, ctx) {
            const behaviour = getBehaviour.get(request.releaseId);
            if (behaviour) await behaviour(ctx);
            return { release: { releaseId: request.releaseId, title: "found" } };
          },
        },
        {
          registerRelease: ["release-manager"],
          getRelease: ["viewer", "release-manager", "release-coordinator"],
        },
      ),
    ],
  });
  const port = await server.listen("127.0.0.1", 0);
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await server.shutdown();
  await telemetry.shutdown();
});

function validRegistration(title = `Release ${randomUUID()}`) {
  return { requestId: randomUUID(), title, type: ReleaseType.MINOR, owner: "alice" };
}

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return errorDetails(error);
  }
  throw new Error("expected the call to fail");
}

describe("authenticated, authorized, validated calls", () => {
  test("a valid call reaches the handler with the principal; authorization is not passed on", async () => {
    const subject = `rm-${randomUUID()}`;
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"], subject) });
    const request = validRegistration();
    const response = await client.registerRelease(request, { metadata: { "x-request-id": "req-42" } });
    expect(response.release?.title).toBe(request.title);
    expect(response.release?.registeredBy).toBe(subject);
    const call = registerCalls.find((c) => c.title === request.title);
    expect(call?.ctx.principal).toEqual({ subject, roles: ["release-manager"], groups: [] });
    expect(call?.ctx.requestId).toBe("req-42");
    expect(call?.ctx.metadata.get("authorization")).toEqual([]);
    expect(call?.ctx.method.name).toBe("RegisterRelease");
    client.close();
  });

  test("one log line per call with method, code, duration and subject", async () => {
    const subject = `viewer-${randomUUID()}`;
    const client = createGrpcClient(ReleaseService, address, { token: () => token(["viewer"], subject) });
    await client.getRelease({ releaseId: randomUUID() });
    await failure(client.registerRelease(validRegistration()));
    const lines = logger.lines.filter((l) => l.message === "gRPC call" && l.fields.subject === subject);
    expect(lines.map((l) => [l.fields.rpc, l.fields.code])).toEqual([
      ["/rdm.release.v1.ReleaseService/GetRelease", "OK"],
      ["/rdm.release.v1.ReleaseService/RegisterRelease", "PERMISSION_DENIED"],
    ]);
    for (const line of lines) expect(typeof line.fields.duration_ms).toBe("number");
    client.close();
  });

  test("a handler may lower its call's log line to debug (a routine call that did nothing)", async () => {
    const subject = `viewer-${randomUUID()}`;
    const client = createGrpcClient(ReleaseService, address, { token: () => token(["viewer"], subject) });
    const quiet = randomUUID();
    getBehaviour.set(quiet, (ctx) => {
      ctx.callLogLevel = "debug";
    });
    await client.getRelease({ releaseId: quiet });
    await client.getRelease({ releaseId: randomUUID() });
    const lines = logger.lines.filter((l) => l.message === "gRPC call" && l.fields.subject === subject);
    expect(lines.map((l) => l.level)).toEqual(["debug", "info"]);
    client.close();
  });

  test("the server span continues the caller's trace (traceparent metadata)", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    const request = validRegistration();
    const caller = await inSpan("test-caller", {}, async (span) => {
      await client.registerRelease(request);
      return span.spanContext();
    });
    const ctx = registerCalls.find((c) => c.title === request.title)?.ctx;
    expect(ctx?.traceparent).toMatch(new RegExp(`^00-${caller.traceId}-[0-9a-f]{16}-0[01]$`));
    const serverSpanId = ctx?.traceparent?.split("-")[2];
    const serverSpan = spans.find((s) => s.spanId === serverSpanId);
    expect(serverSpan).toMatchObject({ name: "rdm.release.v1.ReleaseService/RegisterRelease", kind: 1 /* SERVER */ });
    const clientSpan = spans.find((s) => s.spanId === serverSpan?.parentSpanId);
    expect(clientSpan).toMatchObject({ traceId: caller.traceId, kind: 2 /* CLIENT */, parentSpanId: caller.spanId });
    client.close();
  });
});

describe("authentication", () => {
  test("no token -> UNAUTHENTICATED", async () => {
    const client = createGrpcClient(ReleaseService, address);
    const details = await failure(client.getRelease({ releaseId: randomUUID() }));
    expect(details.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(details.message).toMatch(/no bearer token/);
    expect(details.errorInfo).toMatchObject({ reason: "MISSING_TOKEN", domain: "rdm" });
    client.close();
  });

  test("a token signed with another key -> UNAUTHENTICATED", async () => {
    const forged = await mintDevToken({ subject: "eve", roles: ["admin"], secret: `${secret}-not`, issuer, audience });
    const client = createGrpcClient(ReleaseService, address, { token: forged });
    const details = await failure(client.getRelease({ releaseId: randomUUID() }));
    expect(details.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(details.errorInfo?.reason).toBe("BAD_SIGNATURE");
    client.close();
  });

  test("an expired token and a garbage token -> UNAUTHENTICATED", async () => {
    const expired = await mintDevToken({ subject: "a", roles: ["admin"], secret, issuer, audience, expiresIn: -300 });
    const client = createGrpcClient(ReleaseService, address);
    const expiredDetails = await failure(client.getRelease({ releaseId: randomUUID() }, { token: expired }));
    expect(expiredDetails).toMatchObject({ code: GrpcStatus.UNAUTHENTICATED, errorInfo: { reason: "EXPIRED" } });
    const garbage = await failure(client.getRelease({ releaseId: randomUUID() }, { token: "garbage" }));
    expect(garbage).toMatchObject({ code: GrpcStatus.UNAUTHENTICATED, errorInfo: { reason: "MALFORMED_TOKEN" } });
    client.close();
  });

  test("an authorization header that is not Bearer -> UNAUTHENTICATED", async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Basic ${Buffer.from("a:b").toString("base64")}`);
    const error = await new Promise<unknown>((resolve) =>
      raw.makeUnaryRequest(
        "/rdm.release.v1.ReleaseService/GetRelease",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        metadata,
        (err) => resolve(err),
      ),
    );
    expect(errorDetails(error)).toMatchObject({
      code: GrpcStatus.UNAUTHENTICATED,
      errorInfo: { reason: "MALFORMED_TOKEN" },
    });
    raw.close();
  });
});

describe("authorization", () => {
  test("a role not allowed for the method -> PERMISSION_DENIED naming the required roles", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["viewer", "deployer"]) });
    const details = await failure(client.registerRelease(validRegistration()));
    expect(details.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(details.message).toContain("RegisterRelease requires one of the roles: release-manager, admin");
    expect(details.errorInfo).toMatchObject({
      reason: "MISSING_ROLE",
      metadata: { required_roles: "release-manager,admin" },
    });
    client.close();
  });

  test("no roles at all -> PERMISSION_DENIED; admin may call anything", async () => {
    const none = createGrpcClient(ReleaseService, address, { token: await token([]) });
    expect((await failure(none.getRelease({ releaseId: randomUUID() }))).code).toBe(GrpcStatus.PERMISSION_DENIED);
    const admin = createGrpcClient(ReleaseService, address, { token: await token(["admin"]) });
    await expect(admin.registerRelease(validRegistration())).resolves.toBeDefined();
    none.close();
    admin.close();
  });

  test("authorization happens before validation: an invalid request from the wrong role is PERMISSION_DENIED", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["viewer"]) });
    expect((await failure(client.registerRelease({ title: "x" }))).code).toBe(GrpcStatus.PERMISSION_DENIED);
    client.close();
  });
});

describe("validation (protovalidate)", () => {
  test("an invalid RegisterRelease -> INVALID_ARGUMENT with every field violation", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    const title = `x${randomUUID().slice(0, 1)}`; // 2 characters: below min_len 3
    const details = await failure(
      client.registerRelease({ requestId: "not-a-uuid", title, stakeholders: ["bob", "bob"], risk: 99 as never }),
    );
    expect(details.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    const violations = (details.badRequest?.fieldViolations ?? []).map((v) => [v.field, v.reason]);
    expect(violations).toEqual(
      expect.arrayContaining([
        ["request_id", "string.uuid"],
        ["title", "string.min_len"],
        ["type", "enum.not_in"],
        ["owner", "string.min_len"],
        ["stakeholders", "repeated.unique"],
        ["risk", "enum.defined_only"],
      ]),
    );
    expect(violations).toHaveLength(6);
    for (const v of details.badRequest?.fieldViolations ?? []) expect(v.description).not.toBe("");
    expect(details.message).toMatch(/^invalid request: .*title: .*owner: /);
    expect(registerCalls.some((c) => c.title === title)).toBe(false);
    client.close();
  });

  test("thousands of violations: the first 20 listed, the rest counted, within what any client's headers take", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    // 100 stakeholders of 201 characters each: 100 violations of string.max_len.
    const stakeholders = Array.from({ length: 100 }, (_, i) => `${"s".repeat(198)}${String(i).padStart(3, "0")}`);
    try {
      const details = await failure(client.registerRelease({ ...validRegistration(), stakeholders }));
      expect(details.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(details.badRequest?.fieldViolations.map((v) => v.field)).toEqual(
        Array.from({ length: 20 }, (_, i) => `stakeholders[${i}]`),
      );
      expect(details.message).toMatch(
        /^invalid request: stakeholders\[0\]: .* \(and 80 more violations, not listed\)$/,
      );
      expect(details.message.length).toBeLessThanOrEqual(2_000);
    } finally {
      client.close();
    }
  });

  test("a message-level rule reports the nested field path", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    const details = await failure(
      client.registerRelease({
        ...validRegistration(),
        plannedWindow: { start: { seconds: 2_000_000_000n }, end: { seconds: 1_000_000_000n } },
      }),
    );
    expect(details.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(details.badRequest?.fieldViolations.map((v) => [v.field, v.reason, v.description])).toEqual([
      ["planned_window", "time_window.end_after_start", "end must not be before start"],
    ]);
    client.close();
  });

  test("a control character or an instant outside years 1..9999 -> INVALID_ARGUMENT naming the fields", async () => {
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    const title = `Payments ${randomUUID()}`;
    const details = await failure(
      client.registerRelease({
        ...validRegistration(),
        title,
        description: "line1\u0000line2",
        plannedWindow: { start: { seconds: -62_135_596_801n }, end: { seconds: 253_402_300_800n } },
      }),
    );
    expect(details.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(details.badRequest?.fieldViolations.map((v) => [v.field, v.reason])).toEqual([
      ["description", "string.no_control_characters"],
      ["planned_window.start", "timestamp.range"],
      ["planned_window.end", "timestamp.range"],
    ]);
    expect(registerCalls.some((c) => c.title === title)).toBe(false);
    client.close();
  });

  test("bytes that are not the request message -> INVALID_ARGUMENT, and the server keeps serving", async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${await token(["release-manager"])}`);
    const error = await new Promise<unknown>((resolve) =>
      raw.makeUnaryRequest(
        "/rdm.release.v1.ReleaseService/RegisterRelease",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0xff, 0xff, 0xff, 0xff]),
        metadata,
        (err) => resolve(err),
      ),
    );
    const details = errorDetails(error);
    expect(details.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(details.message).toMatch(/not a valid rdm\.release\.v1\.RegisterReleaseRequest/);
    // No field to name, so no BadRequest (an empty one would say nothing).
    expect(details.badRequest).toBeUndefined();
    raw.close();
    const client = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    await expect(client.registerRelease(validRegistration())).resolves.toBeDefined();
    client.close();
  });
});

describe("domain errors are mapped to gRPC statuses with google.rpc details", () => {
  const get = async (behaviour: () => unknown) => {
    const releaseId = randomUUID();
    getBehaviour.set(releaseId, behaviour);
    const c = createGrpcClient(ReleaseService, address, { token: await token(["viewer"]) });
    try {
      return await failure(c.getRelease({ releaseId }));
    } finally {
      c.close();
    }
  };

  test("NotFound -> NOT_FOUND + ResourceInfo", async () => {
    const details = await get(() => {
      throw new NotFound("release", "REL-1");
    });
    expect(details).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
      message: "release REL-1 not found",
      resourceInfo: { resourceType: "release", resourceName: "REL-1" },
    });
  });

  test("FailedPrecondition -> FAILED_PRECONDITION + every violation", async () => {
    const violations = [
      { type: "GATE_NOT_MET", subject: "approval", description: "no approval recorded" },
      { type: "GATE_NOT_MET", subject: "test-evidence", description: "no test evidence attached" },
    ];
    const details = await get(() => {
      throw new FailedPrecondition("release cannot leave PLANNING", violations);
    });
    expect(details.code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect(details.message).toBe("release cannot leave PLANNING");
    expect(
      details.preconditionFailure?.violations.map(({ type, subject, description }) => ({ type, subject, description })),
    ).toEqual(violations);
  });

  test("WrongExpectedVersion (event store) -> ABORTED", async () => {
    const details = await get(() => {
      throw new WrongExpectedVersion("release-1", 3, 4);
    });
    expect(details.code).toBe(GrpcStatus.ABORTED);
    expect(details.errorInfo).toMatchObject({
      reason: "WRONG_EXPECTED_VERSION",
      metadata: { stream_id: "release-1", expected_version: "3", actual_version: "4" },
    });
  });

  test("a deadlock or serialization failure PostgreSQL kept breaking -> ABORTED, retryable", async () => {
    for (const code of ["40P01", "40001"]) {
      // As pg's DatabaseError has them: name "error", the SQLSTATE in code.
      const details = await get(() => {
        throw Object.assign(new Error("deadlock detected"), { name: "error", code });
      });
      expect([details.code, details.message, details.errorInfo?.reason]).toEqual([
        GrpcStatus.ABORTED,
        "concurrent transactions collided, retry",
        "TRANSACTION_COLLISION",
      ]);
    }
  });

  test("InvalidArgument, AlreadyExists, PermissionDenied, Aborted", async () => {
    const invalid = await get(() => {
      throw new InvalidArgument([
        { field: "release_id", description: "unknown release key format", reason: "KEY_FORMAT" },
      ]);
    });
    expect(invalid.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(invalid.badRequest?.fieldViolations[0]).toMatchObject({ field: "release_id", reason: "KEY_FORMAT" });
    const exists = await get(() => {
      throw new AlreadyExists("release key taken", { resourceType: "release", resourceName: "REL-9" });
    });
    expect(exists).toMatchObject({ code: GrpcStatus.ALREADY_EXISTS, resourceInfo: { resourceName: "REL-9" } });
    const denied = await get(() => {
      throw new PermissionDenied("an owner may not approve their own release", "SEPARATION_OF_DUTIES");
    });
    expect(denied).toMatchObject({ code: GrpcStatus.PERMISSION_DENIED, errorInfo: { reason: "SEPARATION_OF_DUTIES" } });
    const aborted = await get(() => {
      throw new Aborted("retry");
    });
    expect(aborted.code).toBe(GrpcStatus.ABORTED);
  });

  test("a precondition failure keeps 20 violations and says how many more; a long message is cut", async () => {
    const violations = Array.from({ length: 50 }, (_, i) => ({
      type: "GATE_NOT_MET",
      subject: `g${i}`,
      description: "no",
    }));
    const many = await get(() => {
      throw new FailedPrecondition("release cannot leave PLANNING", violations);
    });
    expect(many.message).toBe("release cannot leave PLANNING (and 30 more violations, not listed)");
    expect(many.preconditionFailure?.violations.map((v) => v.subject)).toEqual(
      violations.slice(0, 20).map((v) => v.subject),
    );
    const long = await get(() => {
      throw new FailedPrecondition(`refused: ${"x".repeat(10_000)}`);
    });
    expect(encodeURI(long.message).length).toBeLessThanOrEqual(1_000);
    expect(long.message.endsWith("x…")).toBe(true);
  });

  test("a status fits the 8 KB of headers a C-core client takes, however long and however many its texts", async () => {
    const emoji = "\u{1F600}".repeat(1_200);
    // Cut anywhere, a text of emoji would leave half a surrogate pair, on which grpc-js's
    // encoding of the message throws outside any handler: the process ended.
    const missing = await get(() => {
      throw new NotFound("configuration item", `a${emoji}`);
    });
    expect(missing.code).toBe(GrpcStatus.NOT_FOUND);
    expect(missing.message).toMatch(/^configuration item a\u{1F600}+…$/u);
    const violations = Array.from({ length: 30 }, (_, i) => ({
      type: `rule.${i}`,
      subject: emoji,
      description: emoji,
    }));
    let trailerBytes = 0;
    const many = await get(() => {
      const error = new FailedPrecondition(`refused ${emoji}`, violations);
      trailerBytes =
        encodeURI(toStatus(error).message).length +
        Buffer.from(statusTrailer(toStatus(error)).get(STATUS_DETAILS_KEY)[0] as Buffer).toString("base64").length;
      throw error;
    });
    expect(trailerBytes).toBeLessThan(6 * 1024);
    const listed = many.preconditionFailure?.violations.length ?? 0;
    expect(listed).toBeGreaterThan(0);
    expect(many.message).toMatch(new RegExp(`\\(and ${30 - listed} more violations, not listed\\)$`));
  });

  test("a client stream ended early by the client -> CANCELLED, not logged as a failure", async () => {
    const closed = await get(() => {
      throw Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
    });
    expect(closed).toMatchObject({ code: GrpcStatus.CANCELLED });
    expect(logger.lines.some((l) => (l.fields.err as Error | undefined)?.message === "Premature close")).toBe(false);
  });

  test("an unknown error -> INTERNAL with a generic message, logged once with the real one", async () => {
    const secretMessage = `connection string postgres://u:p@db/${randomUUID()}`;
    const details = await get(() => {
      throw new Error(secretMessage);
    });
    expect(details).toMatchObject({ code: GrpcStatus.INTERNAL, message: "internal error" });
    const logged = logger.lines.filter(
      (l) => l.level === "error" && (l.fields.err as Error | undefined)?.message === secretMessage,
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]?.fields.rpc).toBe("/rdm.release.v1.ReleaseService/GetRelease");
  });

  test("a thrown non-Error value -> INTERNAL; the server keeps serving", async () => {
    const details = await get(() => {
      throw "just a string";
    });
    expect(details.code).toBe(GrpcStatus.INTERNAL);
    const client2 = createGrpcClient(ReleaseService, address, { token: await token(["viewer"]) });
    await expect(client2.getRelease({ releaseId: randomUUID() })).resolves.toMatchObject({
      release: { title: "found" },
    });
    client2.close();
  });
});

describe("health and reflection (no token needed)", () => {
  const require = createRequire(import.meta.url);

  function healthClient() {
    const definition = protoLoader.loadSync(healthProtoPath, loaderOptions);
    const Health = clientClass<HealthClient>(definition, "grpc.health.v1.Health");
    return new Health(address, grpc.credentials.createInsecure());
  }
  function check(client: HealthClient, service: string): Promise<{ code?: number; status?: string }> {
    return new Promise((resolve) =>
      client.Check({ service }, (error: grpc.ServiceError | null, response: { status: string }) =>
        resolve(error ? { code: error.code } : { status: response.status }),
      ),
    );
  }

  test("grpc.health.v1 Check reports SERVING for the server and each service", async () => {
    const client = healthClient();
    expect(await check(client, "")).toEqual({ status: "SERVING" });
    expect(await check(client, "rdm.release.v1.ReleaseService")).toEqual({ status: "SERVING" });
    expect(await check(client, "no.such.Service")).toEqual({ code: GrpcStatus.NOT_FOUND });
    client.close();
    // The same through this package's own client (call.js health uses it).
    expect(await checkHealth(address)).toBe("SERVING");
    server.health.setServing("rdm.release.v1.ReleaseService", false);
    try {
      expect(await checkHealth(address, "rdm.release.v1.ReleaseService")).toBe("NOT_SERVING");
    } finally {
      server.health.setServing("rdm.release.v1.ReleaseService", true);
    }
    await expect(checkHealth(address, "no.such.Service")).rejects.toMatchObject({ code: GrpcStatus.NOT_FOUND });
  });

  test("setServing changes what Check and Watch report", async () => {
    const client = healthClient();
    const service = "rdm.release.v1.ReleaseService";
    const watch = client.Watch({ service });
    const seen: string[] = [];
    watch.on("data", (m: { status: string }) => seen.push(m.status));
    watch.on("error", () => undefined);
    const waitSeen = async (n: number) => {
      const deadline = Date.now() + 5_000;
      while (seen.length < n && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      expect(seen.length).toBeGreaterThanOrEqual(n);
    };
    await waitSeen(1);
    server.health.setServing(service, false);
    expect(await check(client, service)).toEqual({ status: "NOT_SERVING" });
    await waitSeen(2);
    server.health.setServing(service, true);
    await waitSeen(3);
    expect(seen.slice(0, 3)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    watch.cancel();
    client.close();
  });

  test("while a service or the server is NOT_SERVING, its calls are refused UNAVAILABLE at once", async () => {
    const service = "rdm.release.v1.ReleaseService";
    const c = createGrpcClient(ReleaseService, address, { token: await token(["release-manager"]) });
    const served = registerCalls.length;
    try {
      for (const notServing of [service, undefined]) {
        server.health.setServing(notServing, false);
        try {
          expect(await failure(c.registerRelease(validRegistration()))).toMatchObject({
            code: GrpcStatus.UNAVAILABLE,
            errorInfo: { reason: "NOT_SERVING", domain: "rdm" },
            retryInfo: { retryDelay: { seconds: 1n } },
          });
          // The caller's own mistakes are still named: a retry would not mend them.
          expect(await failure(c.registerRelease({ ...validRegistration(), title: "" }))).toMatchObject({
            code: GrpcStatus.INVALID_ARGUMENT,
          });
        } finally {
          server.health.setServing(notServing, true);
        }
      }
      expect(registerCalls.length).toBe(served);
      await expect(c.registerRelease(validRegistration("served again"))).resolves.toMatchObject({
        release: { title: "served again" },
      });
    } finally {
      c.close();
    }
  });

  test("calls in flight when their service stops serving are answered UNAVAILABLE at once, not at their deadline", async () => {
    const service = "rdm.release.v1.ReleaseService";
    const c = createGrpcClient(ReleaseService, address, { token: await token(["viewer"]) });
    // Handlers waiting on what no longer answers (a frozen database).
    const waiting: (() => void)[] = [];
    const releaseIds = [randomUUID(), randomUUID()];
    const started = releaseIds.map(
      (releaseId) =>
        new Promise<void>((began) =>
          getBehaviour.set(releaseId, () => {
            began();
            return new Promise<void>((resume) => waiting.push(resume));
          }),
        ),
    );
    try {
      // A deadline far off (rather than none), so that a call left waiting fails the test instead of hanging it.
      const calls = releaseIds.map((releaseId) => failure(c.getRelease({ releaseId }, { deadline: 20_000 })));
      await Promise.all(started);
      server.health.setServing(service, false);
      for (const outcome of await Promise.all(calls)) {
        expect(outcome).toMatchObject({
          code: GrpcStatus.UNAVAILABLE,
          message: expect.stringMatching(/stopped answering while the call was in flight.*same request id/),
          errorInfo: { reason: "NOT_SERVING", domain: "rdm" },
          retryInfo: { retryDelay: { seconds: 1n } },
        });
      }
    } finally {
      server.health.setServing(service, true);
      // The handlers finish later; their answers go nowhere, and the server serves on.
      for (const resume of waiting) resume();
    }
    try {
      await expect(c.getRelease({ releaseId: randomUUID() })).resolves.toMatchObject({ release: { title: "found" } });
    } finally {
      c.close();
    }
  });

  for (const version of ["v1", "v1alpha"]) {
    test(`server reflection ${version} lists the services and serves their descriptors`, async () => {
      const reflectionProto = require.resolve(
        `@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`,
        {
          paths: [require.resolve("@grpc/reflection")],
        },
      );
      const definition = protoLoader.loadSync(reflectionProto, loaderOptions);
      const Reflection = clientClass<ReflectionClient>(definition, `grpc.reflection.${version}.ServerReflection`);
      const client = new Reflection(address, grpc.credentials.createInsecure());
      const call = client.ServerReflectionInfo();
      const responses: ReflectionResponse[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("data", (r: ReflectionResponse) => responses.push(r));
        call.on("end", resolve);
        call.on("error", reject);
      });
      call.write({ list_services: "" });
      call.write({ file_containing_symbol: "rdm.release.v1.ReleaseService" });
      call.end();
      await ended;
      const names = (responses[0] as ReflectionResponse).list_services_response.service.map(
        (s: { name: string }) => s.name,
      );
      expect(names).toEqual(expect.arrayContaining(["rdm.release.v1.ReleaseService", "grpc.health.v1.Health"]));
      const files = (responses[1] as ReflectionResponse).file_descriptor_response.file_descriptor_proto.map(
        (b: Buffer) => fromBinary(FileDescriptorProtoSchema, b),
      );
      const services = files.flatMap((f: { package: string; service: { name: string }[] }) =>
        f.service.map((s) => `${f.package}.${s.name}`),
      );
      expect(services).toContain("rdm.release.v1.ReleaseService");
      client.close();
    });
  }
});

describe("shutdown", () => {
  test("reports NOT_SERVING, finishes in-flight calls and closes even with an open health Watch", async () => {
    const logger2 = captureLogger();
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered!: () => void;
    const handlerEntered = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const own = createGrpcServer({
      logger: logger2,
      verifier: createTokenVerifier({ issuer, audience, secret }),
      services: [
        partialRegistration(
          ReleaseService,
          {
            registerRelease: async () => ({}),
            getRelease: async () => {
              entered();
              await blocked;
              return { release: { title: "finished" } };
            },
          },
          { registerRelease: [], getRelease: ["viewer"] },
        ),
      ],
    });
    const ownAddress = `127.0.0.1:${await own.listen("127.0.0.1", 0)}`;
    const definition = protoLoader.loadSync(healthProtoPath, loaderOptions);
    const Health = clientClass<HealthClient>(definition, "grpc.health.v1.Health");
    const health = new Health(ownAddress, grpc.credentials.createInsecure());
    const watch = health.Watch({ service: "" });
    const seen: string[] = [];
    watch.on("data", (m: { status: string }) => seen.push(m.status));
    watch.on("error", () => undefined);

    const client = createGrpcClient(ReleaseService, ownAddress, { token: await token(["viewer"]) });
    const inFlight = client.getRelease({ releaseId: randomUUID() });
    await handlerEntered;
    const stopped = own.shutdown();
    release();
    await expect(inFlight).resolves.toMatchObject({ release: { title: "finished" } });
    await stopped;
    expect(seen).toContain("NOT_SERVING");
    await expect(client.getRelease({ releaseId: randomUUID() })).rejects.toMatchObject({
      code: GrpcStatus.UNAVAILABLE,
    });
    client.close();
    health.close();
  });
});
