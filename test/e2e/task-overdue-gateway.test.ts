// A task reported overdue by the release service shows at the gateway: the task's flag, the
// `overdueTasks` filter of the release list, and both cleared once the task is completed.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createGrpcClient } from "@rdm/grpc";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import { e2eStack } from "./harness.js";

const stack = e2eStack("e2e-task-overdue");
let releaseAddress: string;
let gatewayUrl: string;

beforeAll(async () => {
  // The deadline scheduler polls often, so the overdue report follows the due time closely.
  const release = await stack.release({ env: { RELEASE_DEADLINE_POLL_MS: "100" } });
  releaseAddress = release.address;
  gatewayUrl = (await stack.gateway()).url;
});

afterAll(() => stack.stop());

async function getJson(path: string) {
  return (await stack.getJson(gatewayUrl, path, await stack.token("vera", ["viewer"]))).body ?? {};
}

test("an overdue task shows at the gateway and in its filter until it is completed", async () => {
  const manager = createGrpcClient(ReleaseService, releaseAddress, {
    token: await stack.token("rita", ["release-manager"]),
  });
  const owner = uniqueId("owner");
  const { release } = await manager.registerRelease({
    requestId: randomUUID(),
    title: "Overdue task",
    type: ReleaseType.MINOR,
    owner,
    coordinator: "carl",
  });
  const releaseId = release?.releaseId as string;
  const added = await manager.addReleaseTask({
    requestId: randomUUID(),
    releaseId,
    name: "Smoke tests",
    assignee: "tom",
    // Due a second from now: the service's scheduler reports it once that has passed.
    dueAt: timestampFromDate(new Date(Date.now() + 1_000)),
  });
  const taskId = added.release?.tasks.find((t) => t.name === "Smoke tests")?.taskId as string;
  const taskAtGateway = async () =>
    ((await getJson(`/v1/releases/${releaseId}`)).tasks ?? []).find((t: { taskId: string }) => t.taskId === taskId);
  const listed = async (filter: string) =>
    (await getJson(`/v1/releases?owner=${owner}&${filter}`)).releases.map((r: { releaseId: string }) => r.releaseId);

  await waitFor(async () => (await taskAtGateway())?.overdue === true, {
    timeoutMs: 30_000,
    description: "the overdue task at the gateway",
  });
  expect(await listed("overdueTasks=true")).toEqual([releaseId]);
  expect(await listed("overdueTasks=false")).toEqual([]);

  await manager.completeReleaseTask({ requestId: randomUUID(), releaseId, taskId });
  await waitFor(async () => (await taskAtGateway())?.status === "DONE", {
    description: "the completion at the gateway",
  });
  expect((await taskAtGateway())?.overdue).toBe(false);
  expect(await listed("overdueTasks=true")).toEqual([]);
});
