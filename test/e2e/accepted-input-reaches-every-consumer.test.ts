// What a service accepts, every consumer accepts (property-based, fast-check): arbitrary commands
// with any Unicode (control characters, lone surrogates, separators), edge-of-range instants and
// broken nanos go through the real release, change and configuration services over gRPC. Each is
// either accepted or refused with INVALID_ARGUMENT (never INTERNAL or anything else), and every
// event the services appended is handled, not dead-lettered, by every consumer of its topic: the
// gateway's projections, the change service's mirror of release links and the release service's
// read model of change states.
import { randomUUID } from "node:crypto";
import { type MessageInitShape, protoInt64 } from "@bufbuild/protobuf";
import type { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { Role } from "@rdm/auth";
import { RELEASE_LINK_EVENTS } from "@rdm/change";
import { createGrpcClient, errorDetails, GrpcStatus } from "@rdm/grpc";
import { ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { LogEntryKind, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { waitFor } from "@rdm/testkit";
import fc from "fast-check";
import pg from "pg";
import { e2eStack } from "./harness.js";

const stack = e2eStack("e2e-accepted-input");
const databases: Record<"release" | "change" | "configuration" | "gateway", string> = {
  release: "",
  change: "",
  configuration: "",
  gateway: "",
};
let addresses: { release: string; change: string; configuration: string };

beforeAll(async () => {
  // Started together: each waits for its consumer group to form.
  const [release, change, configuration, gateway] = await Promise.all([
    stack.release(),
    stack.change(),
    stack.configuration(),
    stack.gateway(),
  ]);
  databases.release = release.databaseUrl;
  databases.change = change.databaseUrl;
  databases.configuration = configuration.databaseUrl;
  databases.gateway = gateway.databaseUrl;
  addresses = { release: release.address, change: change.address, configuration: configuration.address };
}, 120_000);

afterAll(() => stack.stop());

const token = (subject: string, roles: Role[]) => stack.token(subject, roles);

/** Characters the API takes: any grapheme, and the awkward ones storage and JSON must still keep. */
const acceptedCharacter = fc.oneof(
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }),
  fc.constantFrom("\t", "\n", "\r", "\u007f", "\u0085", "\u00a0", "\u2028", "\u202e", "\ufeff", "\ufffd"),
  fc.constantFrom("🚀", "ß", "İ", "\\", '"', "'", "%", "\u0301"),
);
/** Any code point, and the ones the API refuses (C0 controls, lone surrogates) often. */
const anyCharacter = fc.oneof(
  acceptedCharacter,
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  fc.constantFrom("\u0000", "\u0001", "\u000b", "\u001b", "\u001f", "\ud800", "\udfff"),
);
/** Mostly text the API takes (so that events flow), now and then anything at all. */
const text = (minLength: number, maxLength: number) =>
  fc.oneof(
    { weight: 9, arbitrary: fc.string({ unit: acceptedCharacter, minLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: anyCharacter, minLength, maxLength }) },
  );

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
    environments: fc.uniqueArray(text(1, 12), { maxLength: 2 }),
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
});

/** The call's answer, or undefined when it was refused with INVALID_ARGUMENT; any other refusal fails. */
async function acceptedOrInvalid<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    const { code, message } = errorDetails(error);
    if (code !== GrpcStatus.INVALID_ARGUMENT) throw new Error(`refused with ${GrpcStatus[code]}: ${message}`);
    return undefined;
  }
}

/** The ids of the events a service appended, of the given types only when `types` is given. */
async function eventIds(databaseUrl: string, types?: ReadonlySet<string>): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ event_id: string; type: string }>("SELECT event_id, type FROM events");
    return rows.filter((r) => !types || types.has(r.type)).map((r) => r.event_id);
  } finally {
    await client.end();
  }
}

async function unhandled(databaseUrl: string, ids: string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ event_id: string }>(
      "SELECT event_id FROM rdm_handled_events WHERE event_id = ANY($1::text[])",
      [ids],
    );
    const handled = new Set(rows.map((r) => r.event_id));
    return ids.filter((id) => !handled.has(id));
  } finally {
    await client.end();
  }
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
  ];
  for (const [consumer, databaseUrl, ids] of consumers) {
    let missing: string[] = ids;
    await waitFor(
      async () => {
        missing = await unhandled(databaseUrl, missing);
        return missing.length === 0;
      },
      { timeoutMs: 60_000, description: `${consumer}: every appended event handled` },
    ).catch((error: Error) => {
      throw new Error(`${error.message}; ${missing.length} not handled, e.g. ${missing.slice(0, 5).join(", ")}`, {
        cause: error,
      });
    });
  }
}, 180_000);
