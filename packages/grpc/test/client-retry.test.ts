import { randomUUID } from "node:crypto";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { Aborted, createGrpcClient, GrpcStatus } from "../src/index.js";
import { serveGetRelease } from "./support.js";

// The client's retry option: grpc-js sends a call answered ABORTED again, up to the limit.

/** Per release id, how many calls are still to be refused with ABORTED, and how many came. */
const plan = new Map<string, { abort: number; calls: number }>();
let served: Awaited<ReturnType<typeof serveGetRelease>>;

beforeAll(async () => {
  served = await serveGetRelease(async (request) => {
    const entry = plan.get(request.releaseId) ?? { abort: 0, calls: 0 };
    entry.calls++;
    if (entry.abort-- > 0) throw new Aborted("concurrent modification, retry");
    return { release: { releaseId: request.releaseId, title: `after ${entry.calls} calls` } };
  });
});

afterAll(() => served.shutdown());

const token = () => served.token();

test("with retry, a call refused with ABORTED twice is sent again and answered", async () => {
  const client = createGrpcClient(ReleaseService, served.address, { token: await token(), retry: { maxAttempts: 4 } });
  const releaseId = randomUUID();
  plan.set(releaseId, { abort: 2, calls: 0 });
  const { release } = await client.getRelease({ releaseId });
  expect(release?.title).toBe("after 3 calls");
  client.close();
});

test("retries stop at the limit, and without the option the first ABORTED is the answer", async () => {
  const limited = createGrpcClient(ReleaseService, served.address, { token: await token(), retry: { maxAttempts: 2 } });
  const plain = createGrpcClient(ReleaseService, served.address, { token: await token() });
  const [a, b] = [randomUUID(), randomUUID()];
  plan.set(a, { abort: 5, calls: 0 });
  plan.set(b, { abort: 5, calls: 0 });
  await expect(limited.getRelease({ releaseId: a })).rejects.toMatchObject({ code: GrpcStatus.ABORTED });
  await expect(plain.getRelease({ releaseId: b })).rejects.toMatchObject({ code: GrpcStatus.ABORTED });
  expect([plan.get(a)?.calls, plan.get(b)?.calls]).toEqual([2, 1]);
  limited.close();
  plain.close();
});
