// A task reported overdue by the release service shows at the gateway: the task's flag, the
// `overdueTasks` filter of the release list, and both cleared once the task is completed.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { mintDevToken, type Role } from "@rdm/auth";
import { startGateway } from "@rdm/gateway";
import { createGrpcClient } from "@rdm/grpc";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { startReleaseService } from "@rdm/release";
import {
  createTestDatabase,
  testConsumerTimings,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
  waitFor,
} from "@rdm/testkit";

const secret = randomUUID() + randomUUID();
const topicPrefix = testTopicPrefix("e2e-task-overdue");
const stops: (() => Promise<void>)[] = [];
let releaseAddress: string;
let gatewayUrl: string;

beforeAll(async () => {
  const brokers = (await testKafkaBrokers()).join(",");
  const release = await startReleaseService({
    DATABASE_URL: (await createTestDatabase("e2e_overdue_release")).url,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    RELEASE_CONSUMER_GROUP: uniqueId("e2e-overdue-release"),
    RELEASE_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
    RELEASE_DEADLINE_POLL_MS: "100",
  });
  stops.push(() => release.stop());
  releaseAddress = `127.0.0.1:${release.port}`;
  const gateway = await startGateway({
    DATABASE_URL: (await createTestDatabase("e2e_overdue_gateway")).url,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    HTTP_PORT: "0",
    GATEWAY_CONSUMER_GROUP: uniqueId("e2e-overdue-gateway"),
    LOG_LEVEL: "warn",
  });
  stops.push(() => gateway.stop());
  gatewayUrl = gateway.url;
});

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

const token = (subject: string, roles: Role[]) =>
  mintDevToken({ subject, roles, secret, issuer: "rdm", audience: "rdm", expiresIn: "10m" });

async function getJson(path: string) {
  const response = await fetch(`${gatewayUrl}${path}`, {
    headers: { authorization: `Bearer ${await token("vera", ["viewer"])}` },
  });
  return response.json();
}

test("an overdue task shows at the gateway and in its filter until it is completed", async () => {
  const manager = createGrpcClient(ReleaseService, releaseAddress, { token: await token("rita", ["release-manager"]) });
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
