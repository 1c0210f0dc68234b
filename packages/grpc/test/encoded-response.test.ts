// A handler may answer with bytes it encoded itself (EncodedResponse): they go out as they are.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  GetReleaseResponseSchema,
  RegisterReleaseResponseSchema,
  ReleaseService,
} from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { createGrpcClient, EncodedResponse, errorDetails, GrpcStatus } from "../src/index.js";
import { serveGetRelease } from "./support.js";

const WRONG_TYPE = randomUUID();
let served: Awaited<ReturnType<typeof serveGetRelease>>;

beforeAll(async () => {
  served = await serveGetRelease(async (request) => {
    if (request.releaseId === WRONG_TYPE)
      // Bytes of another message: a server fault, not a garbled answer.
      return new EncodedResponse(RegisterReleaseResponseSchema, new Uint8Array()) as never;
    const response = create(GetReleaseResponseSchema, { release: { releaseId: request.releaseId, title: "t" } });
    return new EncodedResponse(GetReleaseResponseSchema, toBinary(GetReleaseResponseSchema, response));
  });
});

afterAll(() => served.shutdown());

test("encoded bytes reach the client as the method's output message", async () => {
  const token = await served.token();
  const client = createGrpcClient(ReleaseService, served.address, { token });
  try {
    const releaseId = randomUUID();
    expect((await client.getRelease({ releaseId })).release).toMatchObject({ releaseId, title: "t" });
    const failure = await client.getRelease({ releaseId: WRONG_TYPE }).then(() => undefined, errorDetails);
    expect(failure?.code).toBe(GrpcStatus.INTERNAL);
  } finally {
    client.close();
  }
});
