import { createHash, randomUUID } from "node:crypto";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { createTokenVerifier, mintDevToken, type Role } from "@rdm/auth";
import {
  ConfigurationService,
  VerifyArtifactContentRequestSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import {
  type CallContext,
  createGrpcClient,
  createGrpcServer,
  errorDetails,
  FailedPrecondition,
  type GrpcServer,
  GrpcStatus,
  type ServiceRegistration,
} from "../src/index.js";
import { captureLogger } from "./support.js";

// Client-streaming calls, exercised through ConfigurationService.VerifyArtifactContent (the
// first client-streaming method); its other methods are stubs that these tests never call.

const issuer = "rdm-grpc-stream-test";
const audience = "rdm";
const secret = "grpc-stream-test-secret-long-enough!";
const token = (roles: Role[]) => mintDevToken({ subject: `user-${randomUUID()}`, roles, secret, issuer, audience });

/** What the handler saw of each call; `ended` how it ended: with its answer, or by an error. */
const seen: { artifactIds: string[]; chunks: number; subject: string; ended?: "answered" | "failed" }[] = [];
let server: GrpcServer;
let address: string;

/** Resolves once `condition` holds, polled every 10 ms, or fails after 10 s. */
async function until(condition: () => boolean) {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 10_000) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The messages of `requests`, `onError` called with the error that ends them early. */
async function* catching<T>(requests: AsyncIterable<T>, onError: (error: unknown) => never): AsyncGenerator<T> {
  try {
    yield* requests;
  } catch (error) {
    onError(error);
  }
}

beforeAll(async () => {
  const unused = async () => {
    throw new Error("not used by this test");
  };
  const handlers = Object.fromEntries(ConfigurationService.methods.map((m) => [m.localName, unused]));
  const roles = Object.fromEntries(ConfigurationService.methods.map((m) => [m.localName, ["config-manager"]]));
  const registration = {
    service: ConfigurationService,
    roles,
    handlers: {
      ...handlers,
      async verifyArtifactContent(
        requests: AsyncIterable<{ artifactId: string; chunk: Uint8Array }>,
        ctx: CallContext,
      ) {
        const hash = createHash("sha256");
        const record: (typeof seen)[number] = { artifactIds: [], chunks: 0, subject: ctx.principal.subject };
        seen.push(record);
        let size = 0;
        const failed = (error: unknown) => {
          record.ended = "failed";
          throw error;
        };
        for await (const request of catching(requests, failed)) {
          record.artifactIds.push(request.artifactId);
          if (request.artifactId === "refuse-early") {
            throw new FailedPrecondition("refused after the first message", [
              { type: "test.refusal", subject: request.artifactId, description: "early" },
            ]);
          }
          record.chunks += 1;
          size += request.chunk.length;
          hash.update(request.chunk);
        }
        record.ended = "answered";
        return { result: { actualSha256: hash.digest("hex"), actualSizeBytes: BigInt(size) } };
      },
    },
  } as unknown as ServiceRegistration;
  server = createGrpcServer({
    logger: captureLogger(),
    verifier: createTokenVerifier({ issuer, audience, secret }),
    services: [registration],
  });
  address = `127.0.0.1:${await server.listen("127.0.0.1", 0)}`;
});

afterAll(() => server.shutdown());

test("streams every message in order (with backpressure) and returns the single response", async () => {
  const client = createGrpcClient(ConfigurationService, address, { token: await token(["config-manager"]) });
  try {
    const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(256 * 1024, i));
    async function* requests() {
      for (const [i, chunk] of chunks.entries()) yield { artifactId: i === 0 ? "a-1" : "", chunk };
    }
    const response = await client.verifyArtifactContent(requests());
    const expected = createHash("sha256");
    for (const chunk of chunks) expected.update(chunk);
    expect(response.result?.actualSha256).toBe(expected.digest("hex"));
    expect(response.result?.actualSizeBytes).toBe(BigInt(64 * 256 * 1024));
    const record = seen.find((r) => r.artifactIds[0] === "a-1");
    expect(record?.chunks).toBe(64);

    // A plain array works too, and an empty stream reaches the handler as an empty iterable.
    const empty = await client.verifyArtifactContent([]);
    expect(empty.result?.actualSizeBytes).toBe(0n);
  } finally {
    client.close();
  }
});

test("a stream reset or dropped by the client before it half-closes ends the handler's loop by an error", async () => {
  // A raw HTTP/2 client, as any gRPC client behaves when it cancels (RST_STREAM) or its process
  // dies (the connection drops): one message of the stream sent, never the half-close.
  for (const abort of ["reset", "drop"] as const) {
    const artifactId = `${abort}-${randomUUID()}`;
    const received = () => seen.find((r) => r.artifactIds[0] === artifactId);
    const session = http2.connect(`http://${address}`);
    const stream = session.request({
      ":method": "POST",
      ":path": "/rdm.configuration.v1.ConfigurationService/VerifyArtifactContent",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${await token(["config-manager"])}`,
    });
    stream.on("error", () => {});
    const message = toBinary(
      VerifyArtifactContentRequestSchema,
      create(VerifyArtifactContentRequestSchema, {
        artifactId,
        chunk: Buffer.alloc(1024, 1),
      }),
    );
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    stream.write(frame);
    await until(() => received()?.chunks === 1);
    if (abort === "reset") stream.destroy();
    else session.destroy();
    await until(() => received()?.ended !== undefined);
    expect([abort, received()?.ended]).toEqual([abort, "failed"]);
    session.destroy();
  }
});

test("a handler that answers early ends the call with its status; the client stops sending", async () => {
  const client = createGrpcClient(ConfigurationService, address, { token: await token(["config-manager"]) });
  let produced = 0;
  async function* endless() {
    yield { artifactId: "refuse-early", chunk: new Uint8Array(10) };
    for (;;) {
      produced += 1;
      yield { chunk: new Uint8Array(64 * 1024) };
      if (produced > 100_000) throw new Error("client kept sending after the answer");
    }
  }
  try {
    const failure = await client.verifyArtifactContent(endless()).then(
      () => undefined,
      (error: unknown) => errorDetails(error),
    );
    expect(failure?.code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect(failure?.preconditionFailure?.violations[0]?.type).toBe("test.refusal");
    expect(produced).toBeLessThan(100_000);
  } finally {
    client.close();
  }
});

test("authorization happens before the handler reads the stream", async () => {
  const client = createGrpcClient(ConfigurationService, address, { token: await token(["viewer"]) });
  const before = seen.length;
  try {
    const failure = await client
      .verifyArtifactContent([{ artifactId: "x", chunk: new Uint8Array(1) }])
      .then(() => undefined, errorDetails);
    expect(failure?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(seen.length).toBe(before);
  } finally {
    client.close();
  }
});
