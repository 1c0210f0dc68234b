// What a service accepts, every consumer accepts (property-based, fast-check): arbitrary commands
// with any Unicode (control characters, lone surrogates, separators), edge-of-range instants and
// broken nanos go through the real release, change and configuration services over gRPC. Each is
// either accepted or refused with INVALID_ARGUMENT naming a field (never INTERNAL or anything
// else), and every event the services appended is handled, not dead-lettered, by every consumer of
// its topic: the gateway's projections, the change service's mirror of release links, the
// release service's read model of change states and the deployment service's gate facts. The first and last instants of the range, always
// tried, are accepted and shown within it.
import { randomUUID } from "node:crypto";
import { type MessageInitShape, protoInt64 } from "@bufbuild/protobuf";
import type { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { Role } from "@rdm/auth";
import { RELEASE_LINK_EVENTS } from "@rdm/change";
import { UPSTREAM_FACT_EVENTS } from "@rdm/deployment";
import { createGrpcClient } from "@rdm/grpc";
import { ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { LogEntryKind, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { waitFor } from "@rdm/testkit";
import fc from "fast-check";
import { acceptedOrInvalid, eventIds, everyEventHandled, text } from "./accepted-input.js";
import { e2eStack } from "./harness.js";

const stack = e2eStack("e2e-accepted-input");
const databases: Record<"release" | "change" | "configuration" | "deployment" | "gateway", string> = {
  release: "",
  change: "",
  configuration: "",
  deployment: "",
  gateway: "",
};
let addresses: { release: string; change: string; configuration: string };
let gatewayUrl: string;

beforeAll(async () => {
  // Started together: each waits for its consumer group to form.
  const [release, change, configuration, deployment, gateway] = await Promise.all([
    stack.release(),
    stack.change(),
    stack.configuration(),
    stack.deployment(),
    stack.gateway(),
  ]);
  databases.release = release.databaseUrl;
  databases.change = change.databaseUrl;
  databases.configuration = configuration.databaseUrl;
  databases.deployment = deployment.databaseUrl;
  databases.gateway = gateway.databaseUrl;
  addresses = { release: release.address, change: change.address, configuration: configuration.address };
  gatewayUrl = gateway.url;
}, 120_000);

afterAll(() => stack.stop());

const token = (subject: string, roles: Role[]) => stack.token(subject, roles);

const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;
type TimestampInit = MessageInitShape<typeof TimestampSchema>;
/** Instants across the whole range, at and just past both ends, with broken nanos now and then. */
const instant: fc.Arbitrary<TimestampInit> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      seconds: fc.bigInt({ min: MIN_SECONDS, max: MAX_SECONDS }),
      nanos: fc.integer({ min: 0, max: 999_999_999 }),
    }),
  },
  fc.constantFrom<TimestampInit>(
    { seconds: MIN_SECONDS, nanos: 0 },
    { seconds: MIN_SECONDS - 1n, nanos: 999_999_999 },
    { seconds: MAX_SECONDS, nanos: 999_999_000 },
    { seconds: MAX_SECONDS, nanos: 999_999_999 },
    { seconds: MAX_SECONDS + 1n, nanos: 0 },
    { seconds: 0n, nanos: -1 },
    { seconds: 0n, nanos: 1_000_000_000 },
    { seconds: protoInt64.parse("-9223372036854775808"), nanos: 0 },
  ),
);
const window = fc.option(fc.record({ start: instant, end: instant }), { nil: undefined });

const commands = fc.record({
  release: fc.record({
    title: text(3, 40),
    description: text(0, 80),
    owner: text(1, 20),
    category: text(0, 20),
    stakeholders: fc.uniqueArray(text(1, 12), { maxLength: 3 }),
    plannedWindow: window,
  }),
  task: fc.record({ name: text(1, 40), assignee: text(0, 20), dueAt: fc.option(instant, { nil: undefined }) }),
  log: text(3, 80),
  change: fc.record({
    title: text(3, 40),
    description: text(0, 80),
    justification: text(0, 80),
    affectedCiIds: fc.uniqueArray(text(1, 20), { maxLength: 3 }),
    // Mostly environment names as the deployment service defines them; any text is refused.
    environments: fc.uniqueArray(
      fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/) }, text(1, 12)),
      { maxLength: 2 },
    ),
    plannedWindow: window,
    firstCommitTime: fc.option(instant, { nil: undefined }),
  }),
  // Why the change is cancelled, or undefined to keep it.
  cancellation: fc.option(text(1, 80), { nil: undefined }),
  item: fc.record({
    name: text(1, 40),
    owner: text(0, 20),
    attributes: fc.dictionary(text(1, 12), text(0, 30), { maxKeys: 3 }),
  }),
  artifact: fc.record({
    name: text(1, 40),
    version: fc.tuple(fc.nat(), fc.nat(), fc.nat()).map((parts) => parts.join(".")),
    // The whole uint64 range, and often where storage and JSON run out (2^53, 2^63).
    sizeBytes: fc.oneof(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.constantFrom(0n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n),
    ),
    mediaUri: text(1, 40),
  }),
});

/** Every event the three services appended so far, handled (not dead-lettered) by every consumer of its topic. */
async function everyConsumerHandledEveryEvent() {
  const appended = {
    release: await eventIds(databases.release),
    change: await eventIds(databases.change),
    configuration: await eventIds(databases.configuration),
  };
  const consumers: [string, string, string[]][] = [
    ["gateway", databases.gateway, [...appended.release, ...appended.change, ...appended.configuration]],
    // The change service's consumer passes by the release events it does not mirror (no marker).
    ["change service (release links)", databases.change, await eventIds(databases.release, RELEASE_LINK_EVENTS)],
    ["release service (change states)", databases.release, appended.change],
    // The deployment service's gate facts pass by the types their handlers do not read.
    [
      "deployment service (gate facts)",
      databases.deployment,
      [
        ...(await eventIds(databases.release, UPSTREAM_FACT_EVENTS.release)),
        ...(await eventIds(databases.change, UPSTREAM_FACT_EVENTS.change)),
        ...(await eventIds(databases.configuration, UPSTREAM_FACT_EVENTS.configuration)),
      ],
    ],
  ];
  await everyEventHandled(consumers);
}

test("arbitrary accepted commands reach every consumer; refusals are INVALID_ARGUMENT", async () => {
  const release = createGrpcClient(ReleaseService, addresses.release, {
    token: await token("olivia", ["release-manager", "release-coordinator"]),
  });
  const change = createGrpcClient(ChangeService, addresses.change, { token: await token("carl", ["change-manager"]) });
  const configuration = createGrpcClient(ConfigurationService, addresses.configuration, {
    token: await token("cora", ["config-manager"]),
  });
  let accepted = 0;
  const artifacts: bigint[] = [];
  try {
    await fc.assert(
      fc.asyncProperty(commands, async (c) => {
        const registered = await acceptedOrInvalid(
          release.registerRelease({ requestId: randomUUID(), type: ReleaseType.MINOR, ...c.release }),
        );
        const releaseId = registered?.release?.releaseId;
        if (releaseId) {
          accepted++;
          await acceptedOrInvalid(release.addReleaseTask({ requestId: randomUUID(), releaseId, ...c.task }));
          await acceptedOrInvalid(
            release.recordReleaseLogEntry({ requestId: randomUUID(), releaseId, kind: LogEntryKind.RISK, text: c.log }),
          );
        }
        const raised = await acceptedOrInvalid(
          change.raiseChange({ requestId: randomUUID(), type: ChangeType.NORMAL, ...c.change }),
        );
        const changeRequestId = raised?.change?.changeRequestId;
        if (releaseId && changeRequestId)
          await release.linkChangeRequest({ requestId: randomUUID(), releaseId, changeRequestId });
        if (changeRequestId && c.cancellation !== undefined)
          await acceptedOrInvalid(
            change.cancelChange({ requestId: randomUUID(), changeRequestId, reason: c.cancellation }),
          );
        await acceptedOrInvalid(
          configuration.registerConfigurationItem({ requestId: randomUUID(), type: CiType.SERVICE, ...c.item }),
        );
        const artifact = await acceptedOrInvalid(
          // A version of its own (build metadata): the same name and version again with another
          // checksum is refused.
          configuration.registerArtifact({
            requestId: randomUUID(),
            sha256: "0".repeat(64),
            ...c.artifact,
            version: `${c.artifact.version}+${randomUUID()}`,
          }),
        );
        if (artifact) artifacts.push(artifact.artifact?.sizeBytes ?? 0n);
      }),
      { numRuns: 25 },
    );
  } finally {
    release.close();
    change.close();
    configuration.close();
  }
  // Some of what was generated must have gone through, or the property says nothing about consumers.
  expect(accepted).toBeGreaterThan(0);
  expect(artifacts.length).toBeGreaterThan(0);

  await everyConsumerHandledEveryEvent();
}, 180_000);

test("the first and the last instant a Timestamp may hold are accepted, and the views show them within the range", async () => {
  const release = createGrpcClient(ReleaseService, addresses.release, {
    token: await token("olivia", ["release-manager", "release-coordinator"]),
  });
  const change = createGrpcClient(ChangeService, addresses.change, { token: await token("carl", ["change-manager"]) });
  // Microseconds past the last millisecond of 9999: rounded to milliseconds they would be year 10000.
  const first = { seconds: MIN_SECONDS, nanos: 0 };
  const last = { seconds: MAX_SECONDS, nanos: 999_999_000 };
  try {
    const { release: registered } = await release.registerRelease({
      requestId: randomUUID(),
      type: ReleaseType.MINOR,
      title: "At the edges of time",
      owner: "olivia",
      plannedWindow: { start: first, end: last },
    });
    const releaseId = registered?.releaseId as string;
    await release.addReleaseTask({ requestId: randomUUID(), releaseId, name: "Last call", dueAt: last });
    await change.raiseChange({
      requestId: randomUUID(),
      type: ChangeType.NORMAL,
      title: "Until the end",
      justification: "edges",
      plannedWindow: { start: first, end: last },
      firstCommitTime: first,
    });
    const viewer = await token("vera", ["viewer"]);
    await waitFor(async () => (await stack.getJson(gatewayUrl, `/v1/releases/${releaseId}`, viewer)).status === 200, {
      timeoutMs: 30_000,
      description: "the release in the gateway",
    });
    const { body } = await stack.getJson(gatewayUrl, `/v1/releases/${releaseId}`, viewer);
    expect((body as { plannedWindow: unknown }).plannedWindow).toEqual({
      start: "0001-01-01T00:00:00.000Z",
      end: "9999-12-31T23:59:59.999Z",
    });
    await everyConsumerHandledEveryEvent();
  } finally {
    release.close();
    change.close();
  }
});
