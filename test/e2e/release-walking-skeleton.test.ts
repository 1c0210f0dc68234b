// The walking skeleton end to end, through the public interfaces only: RegisterRelease over gRPC,
// the event on Kafka (CloudEvents headers, decodable from the published .proto with protoc), the
// gateway's HTTP read model, and a rebuild of that read model from the topic.

import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { mintDevToken, type Role } from "@rdm/auth";
import { createGrpcClient, errorDetails } from "@rdm/grpc";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { ReleaseType, RiskLevel } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { e2eStack } from "./harness.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// Topics of this file's own: its gateways project only the releases registered here.
const stack = e2eStack("e2e-skeleton");
const topicPrefix = stack.topicPrefix;
const token = (roles: Role[], subject = "alice") => stack.token(subject, roles);

let releaseAddress: string;
let gatewayUrl: string;
let releaseDbUrl: string;
let gatewayDbUrl: string;
let brokers: string[];

beforeAll(async () => {
  brokers = await testKafkaBrokers();
  const release = await stack.release();
  releaseDbUrl = release.databaseUrl;
  releaseAddress = release.address;
  const gateway = await stack.gateway();
  gatewayDbUrl = gateway.databaseUrl;
  gatewayUrl = gateway.url;
});

afterAll(() => stack.stop());

const registerRequest = (overrides: Record<string, unknown> = {}) => ({
  requestId: randomUUID(),
  title: "Payments 4.2",
  description: "Quarterly payments release",
  type: ReleaseType.MAJOR,
  category: "payments",
  owner: "olivia",
  coordinator: "carl",
  stakeholders: ["sre-payments"],
  risk: RiskLevel.MEDIUM,
  ...overrides,
});

async function getJson(url: string, bearer: string) {
  const response = await fetch(url, { headers: { authorization: `Bearer ${bearer}` } });
  return { status: response.status, body: response.status === 200 ? await response.json() : undefined };
}

test("a registered release reaches Kafka as a CloudEvent and the gateway read model", async () => {
  const client = createGrpcClient(ReleaseService, releaseAddress, { token: await token(["release-manager"]) });
  const { release } = await client.registerRelease(registerRequest());
  expect(release?.key).toMatch(/^REL-\d{4}-\d{4,}$/);
  const releaseId = release?.releaseId as string;

  const fetched = await client.getRelease({ releaseId });
  expect(fetched.release).toEqual(release);

  const viewer = await token(["viewer"], "vera");
  // Registration appends more than one event (template tasks, notifications): wait for them all.
  const view = await waitFor(
    async () => {
      const { status: code, body } = await getJson(`${gatewayUrl}/v1/releases/${releaseId}`, viewer);
      return code === 200 && body.version === Number(release?.version) ? body : undefined;
    },
    { timeoutMs: 20_000, description: "release visible at the gateway" },
  );
  expect(view).toMatchObject({
    releaseId,
    key: release?.key,
    title: "Payments 4.2",
    type: "MAJOR",
    risk: "MEDIUM",
    phase: "REGISTRATION",
    owner: "olivia",
    stakeholders: ["sre-payments"],
    registeredBy: "alice",
    version: Number(release?.version),
  });

  // Read the topic like an outside consumer would and decode with protoc and the .proto files.
  const kafka = new Kafka({ brokers, clientId: uniqueId("e2e-reader"), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: uniqueId("e2e-reader") });
  await consumer.connect();
  await consumer.subscribe({ topic: `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, fromBeginning: true });
  let found: { headers: Record<string, string>; value: Buffer; key: string } | undefined;
  await consumer.run({
    eachMessage: async ({ message }) => {
      // The release's first event is its registration (later ones: tasks, notifications).
      if (message.key?.toString() !== releaseId || found) return;
      const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
      found = { headers, value: message.value as Buffer, key: message.key.toString() };
    },
  });
  await waitFor(async () => found, { timeoutMs: 20_000, description: "event on rdm.release.events.v1" });
  await consumer.disconnect();
  const message = found as NonNullable<typeof found>;
  expect(message.headers).toMatchObject({
    ce_specversion: "1.0",
    ce_type: "rdm.release.v1.ReleaseRegistered",
    ce_source: "rdm/release",
    ce_subject: releaseId,
    "content-type": "application/protobuf",
  });
  expect(message.headers.ce_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(Number.isNaN(Date.parse(message.headers.ce_time as string))).toBe(false);
  const decoded = execFileSync(
    "protoc",
    [
      `--descriptor_set_in=${path.join(root, "proto/protovalidate.binpb")}`,
      `-I${path.join(root, "proto")}`,
      `--decode=${message.headers.ce_type}`,
      "rdm/release/v1/events.proto",
    ],
    { input: message.value },
  ).toString();
  expect(decoded).toContain(`release_id: "${releaseId}"`);
  expect(decoded).toContain(`key: "${release?.key}"`);
  expect(decoded).toContain("type: RELEASE_TYPE_MAJOR");
  expect(decoded).toContain('actor: "alice"');
});

test("the same request id twice records one event and returns the same response", async () => {
  const client = createGrpcClient(ReleaseService, releaseAddress, { token: await token(["release-manager"]) });
  const request = registerRequest({ title: "Idempotent release" });
  const [first, second] = await Promise.all([client.registerRelease(request), client.registerRelease(request)]);
  const third = await client.registerRelease(request);
  expect(second).toEqual(first);
  expect(third).toEqual(first);
  const db = new pg.Client({ connectionString: releaseDbUrl });
  await db.connect();
  const { rows } = await db.query(
    "SELECT count(*)::int AS n FROM events WHERE type = 'rdm.release.v1.ReleaseRegistered' AND stream_id = $1",
    [first.release?.releaseId],
  );
  await db.end();
  expect(rows[0].n).toBe(1);

  // The same id for a different request is refused, not silently answered with the old result.
  await expect(client.registerRelease({ ...request, title: "Something else" })).rejects.toMatchObject({
    code: status.FAILED_PRECONDITION,
  });
});

test("invalid requests, missing tokens and wrong roles are refused with the right status", async () => {
  const manager = createGrpcClient(ReleaseService, releaseAddress, { token: await token(["release-manager"]) });
  const invalid = await manager
    .registerRelease(registerRequest({ title: "", type: ReleaseType.UNSPECIFIED, requestId: "not-a-uuid" }))
    .catch((e) => e);
  expect(invalid.code).toBe(status.INVALID_ARGUMENT);
  const fields = errorDetails(invalid)
    .badRequest?.fieldViolations.map((v) => v.field)
    .sort();
  expect(fields).toEqual(["request_id", "title", "type"]);

  const anonymous = createGrpcClient(ReleaseService, releaseAddress, {});
  await expect(anonymous.registerRelease(registerRequest())).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  const forged = createGrpcClient(ReleaseService, releaseAddress, {
    token: await mintDevToken({
      subject: "mallory",
      roles: ["admin"],
      secret: "x".repeat(40),
      issuer: "rdm",
      audience: "rdm",
    }),
  });
  await expect(forged.registerRelease(registerRequest())).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  const viewer = createGrpcClient(ReleaseService, releaseAddress, { token: await token(["viewer"]) });
  await expect(viewer.registerRelease(registerRequest())).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
  await expect(viewer.getRelease({ releaseId: randomUUID() })).rejects.toMatchObject({ code: status.NOT_FOUND });

  const response = await fetch(`${gatewayUrl}/v1/releases`);
  expect(response.status).toBe(401);
});

test("the gateway pages through releases and a rebuild from the topic equals the live projection", async () => {
  const client = createGrpcClient(ReleaseService, releaseAddress, { token: await token(["release-manager"]) });
  // Registration appends several events: the live view is complete once each is at its version.
  const versions = new Map<string, number>();
  for (let i = 0; i < 7; i++) {
    const { release } = await client.registerRelease(registerRequest({ title: `Paged release ${i}` }));
    versions.set(release?.releaseId as string, Number(release?.version));
  }
  const ids = [...versions.keys()];
  const viewer = await token(["viewer"]);
  await waitFor(
    async () =>
      (await Promise.all(ids.map((id) => getJson(`${gatewayUrl}/v1/releases/${id}`, viewer)))).every(
        (r, i) => r.status === 200 && r.body.version === versions.get(ids[i] as string),
      ),
    {
      timeoutMs: 20_000,
      description: "all releases projected",
    },
  );

  const seen: string[] = [];
  let pageToken: string | null = null;
  do {
    const query: string = `pageSize=3${pageToken ? `&pageToken=${pageToken}` : ""}`;
    const { body } = await getJson(`${gatewayUrl}/v1/releases?${query}`, viewer);
    expect(body.releases.length).toBeLessThanOrEqual(3);
    seen.push(...body.releases.map((r: { releaseId: string }) => r.releaseId));
    pageToken = body.nextPageToken;
  } while (pageToken);
  expect(new Set(seen).size).toBe(seen.length);
  for (const id of ids) expect(seen).toContain(id);
  expect(
    (await fetch(`${gatewayUrl}/v1/releases?pageToken=garbage`, { headers: { authorization: `Bearer ${viewer}` } }))
      .status,
  ).toBe(400);

  // A second gateway with an empty database and a new consumer group rebuilds from the topic.
  const rebuiltDb = { url: (await stack.gateway()).databaseUrl };
  const snapshot = async (url: string) => {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    const { rows } = await db.query("SELECT * FROM release_view ORDER BY release_id");
    await db.end();
    return rows;
  };
  // Both gateways end up with every release this file registered at its last version (nothing
  // else is written to these topics): wait until the two tables are equal and hold the paged ones.
  const both = async () => ({ live: await snapshot(gatewayDbUrl), rebuilt: await snapshot(rebuiltDb.url) });
  const { live, rebuilt } = await waitFor(
    async () => {
      const tables = await both();
      const byId = new Map(tables.rebuilt.map((r) => [r.release_id, r]));
      const complete = ids.every((id) => Number(byId.get(id)?.version) === versions.get(id));
      return complete && JSON.stringify(tables.live) === JSON.stringify(tables.rebuilt) ? tables : undefined;
    },
    { timeoutMs: 30_000, description: "rebuilt projection equal to the live one" },
  );
  expect(live.length).toBeGreaterThanOrEqual(ids.length);
  expect(rebuilt).toEqual(live);
}, 180_000);
