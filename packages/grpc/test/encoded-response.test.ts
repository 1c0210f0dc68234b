// A handler may answer with bytes it encoded itself (EncodedResponse): they go out as they are.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { createTokenVerifier, mintDevToken } from "@rdm/auth";
import {
  GetReleaseResponseSchema,
  RegisterReleaseResponseSchema,
  ReleaseService,
} from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import {
  createGrpcClient,
  createGrpcServer,
  EncodedResponse,
  errorDetails,
  type GrpcServer,
  GrpcStatus,
} from "../src/index.js";
import { captureLogger, partialRegistration } from "./support.js";

const [issuer, audience, secret] = ["rdm-grpc-test", "rdm", "grpc-test-secret-long-enough-for-hs256!"];
const WRONG_TYPE = randomUUID();
let server: GrpcServer;
let address: string;

beforeAll(async () => {
  server = createGrpcServer({
    logger: captureLogger(),
    verifier: createTokenVerifier({ issuer, audience, secret }),
    services: [
      partialRegistration(
        ReleaseService,
        {
          async getRelease(request) {
            if (request.releaseId === WRONG_TYPE)
              // Bytes of another message: a server fault, not a garbled answer.
              return new EncodedResponse(RegisterReleaseResponseSchema, new Uint8Array()) as never;
            const response = create(GetReleaseResponseSchema, {
              release: { releaseId: request.releaseId, title: "t" },
            });
            return new EncodedResponse(GetReleaseResponseSchema, toBinary(GetReleaseResponseSchema, response));
          },
        },
        { getRelease: ["viewer"] },
      ),
    ],
  });
  address = `127.0.0.1:${await server.listen("127.0.0.1", 0)}`;
});

afterAll(() => server.shutdown());

test("encoded bytes reach the client as the method's output message", async () => {
  const token = await mintDevToken({ subject: "v", roles: ["viewer"], secret, issuer, audience });
  const client = createGrpcClient(ReleaseService, address, { token });
  try {
    const releaseId = randomUUID();
    expect((await client.getRelease({ releaseId })).release).toMatchObject({ releaseId, title: "t" });
    const failure = await client.getRelease({ releaseId: WRONG_TYPE }).then(() => undefined, errorDetails);
    expect(failure?.code).toBe(GrpcStatus.INTERNAL);
  } finally {
    client.close();
  }
});
