// A change and a release link each other, end to end through the release and change services'
// gRPC APIs and Kafka: a link made on either side shows on both, a change implements one release
// (a second release's link is refused, or loses a race and is removed), and the two mirrors do
// not feed each other.
import { randomUUID } from "node:crypto";
import { createGrpcClient, errorDetails, GrpcStatus } from "@rdm/grpc";
import { HANDLED_EVENTS_TABLE } from "@rdm/messaging";
import { ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { waitFor } from "@rdm/testkit";
import pg from "pg";
import { e2eStack, type StartedService } from "./harness.js";

const stack = e2eStack("e2e-change-links");
let release: StartedService;
let change: StartedService;
const rid = () => ({ requestId: randomUUID() });
const WAIT = { timeoutMs: 60_000 };
/** The release events the change service consumes (ReleaseChangeRequestLinked/Unlinked). */
const LINK_EVENTS = "rdm.release.v1.ReleaseChangeRequest%";

beforeAll(async () => {
  [release, change] = await Promise.all([stack.release(), stack.change()]);
}, 120_000);

afterAll(() => stack.stop());

async function clients() {
  const releases = createGrpcClient(ReleaseService, release.address, {
    token: await stack.token("carl", ["release-manager", "release-coordinator", "change-manager"]),
  });
  const changes = createGrpcClient(ChangeService, change.address, {
    token: await stack.token("chris", ["change-manager"]),
  });
  stack.onStop(async () => {
    releases.close();
    changes.close();
  });
  return { releases, changes };
}

async function query<R extends pg.QueryResultRow>(databaseUrl: string, sql: string, args: unknown[]) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return (await db.query<R>(sql, args)).rows;
  } finally {
    await db.end();
  }
}

/** The stream's event types, without their package. */
const typesOf = async (service: StartedService, streamId: string) =>
  (
    await query<{ type: string }>(
      service.databaseUrl,
      "SELECT type FROM events WHERE stream_id = $1 ORDER BY version",
      [streamId],
    )
  ).map((r) => r.type.replace(/^rdm\.\w+\.v1\./, ""));

/**
 * Resolves once `service`'s consumers handled every event of the other service's stream (of the
 * types matching `types`, a LIKE pattern: those it consumes).
 */
async function settled(service: StartedService, from: StartedService, streamId: string, types = "%") {
  const ids = (
    await query<{ event_id: string }>(
      from.databaseUrl,
      "SELECT event_id::text FROM events WHERE stream_id = $1 AND type LIKE $2",
      [streamId, types],
    )
  ).map((r) => r.event_id);
  await waitFor(
    async () => {
      const handled = await query<{ n: string }>(
        service.databaseUrl,
        `SELECT count(DISTINCT event_id)::text AS n FROM ${HANDLED_EVENTS_TABLE} WHERE event_id::text = ANY($1)`,
        [ids],
      );
      return Number(handled[0]?.n) === ids.length;
    },
    { ...WAIT, description: `${streamId}'s events handled` },
  );
}

test("a change raised with a linked release shows on the release; a second release may not link it; an unlink on the release unlinks the change, once", async () => {
  const { releases, changes } = await clients();
  const register = async (title: string) =>
    (await releases.registerRelease({ ...rid(), title, type: ReleaseType.MINOR, owner: "olivia", coordinator: "carl" }))
      .release?.releaseId as string;
  const first = await register("Payments 2.0");
  const second = await register("Payments 2.1");

  const { change: raised } = await changes.raiseChange({
    ...rid(),
    type: ChangeType.NORMAL,
    title: "Payments 2.0 to production",
    environments: ["production"],
    linkedReleaseId: first,
  });
  const changeRequestId = raised?.changeRequestId as string;
  await waitFor(
    async () =>
      (await releases.getRelease({ releaseId: first })).release?.linkedChangeRequestIds.includes(changeRequestId),
    { ...WAIT, description: "the change's link on the release" },
  );

  const refused = errorDetails(
    await releases.linkChangeRequest({ ...rid(), releaseId: second, changeRequestId }).then(
      () => new Error("expected a refusal"),
      (e: unknown) => e,
    ),
  );
  expect([GrpcStatus[refused.code], refused.preconditionFailure?.violations.map((v) => v.type)]).toEqual([
    "FAILED_PRECONDITION",
    ["change.linked_elsewhere"],
  ]);
  expect(refused.message).toContain(first);

  // Both mirrors came to rest: the release's link, the change's record that its release linked it
  // back, and nothing echoed further.
  await settled(change, release, first, LINK_EVENTS);
  await settled(release, change, changeRequestId);
  expect(await typesOf(change, changeRequestId)).toEqual(["ChangeRequestRaised", "ChangeRequestReleaseLinked"]);
  expect((await typesOf(release, first)).filter((t) => t.includes("ChangeRequest"))).toEqual([
    "ReleaseChangeRequestLinked",
  ]);

  // Unlinked on the release: the change follows, and nothing links them again.
  await releases.unlinkChangeRequest({ ...rid(), releaseId: first, changeRequestId });
  await waitFor(async () => (await changes.getChange({ changeRequestId })).change?.linkedReleaseId === "", {
    ...WAIT,
    description: "the change unlinked",
  });
  await settled(release, change, changeRequestId);
  await settled(change, release, first, LINK_EVENTS);
  expect((await releases.getRelease({ releaseId: first })).release?.linkedChangeRequestIds).toEqual([]);
  expect(await typesOf(change, changeRequestId)).toEqual([
    "ChangeRequestRaised",
    "ChangeRequestReleaseLinked",
    "ChangeRequestReleaseUnlinked",
  ]);
});

test("a change raised naming a release nobody registered gives way to a release that links it", async () => {
  const { releases, changes } = await clients();
  const nowhere = randomUUID();
  const { change: raised } = await changes.raiseChange({
    ...rid(),
    type: ChangeType.NORMAL,
    title: "Billing to production",
    environments: ["production"],
    linkedReleaseId: nowhere,
  });
  const changeRequestId = raised?.changeRequestId as string;
  await settled(release, change, changeRequestId);
  const { release: real } = await releases.registerRelease({
    ...rid(),
    title: "Billing 1.4",
    type: ReleaseType.MINOR,
    owner: "olivia",
    coordinator: "carl",
  });
  const releaseId = real?.releaseId as string;
  await releases.linkChangeRequest({ ...rid(), releaseId, changeRequestId });
  await waitFor(async () => (await changes.getChange({ changeRequestId })).change?.linkedReleaseId === releaseId, {
    ...WAIT,
    description: "the change linked to the registered release",
  });
  await settled(release, change, changeRequestId);
  expect((await releases.getRelease({ releaseId })).release?.linkedChangeRequestIds).toEqual([changeRequestId]);
  expect(await typesOf(change, changeRequestId)).toEqual(["ChangeRequestRaised", "ChangeRequestReleaseLinked"]);
});

test("two releases linking one change at once: the change keeps one, the other release ends up without it", async () => {
  const { releases, changes } = await clients();
  const register = async (title: string) =>
    (await releases.registerRelease({ ...rid(), title, type: ReleaseType.MINOR, owner: "olivia", coordinator: "carl" }))
      .release?.releaseId as string;
  const [first, second] = await Promise.all([register("Ledger 3.0"), register("Ledger 3.1")]);
  const { change: raised } = await changes.raiseChange({
    ...rid(),
    type: ChangeType.NORMAL,
    title: "Ledger to production",
    environments: ["production"],
  });
  const changeRequestId = raised?.changeRequestId as string;
  // Neither release has heard of the change's link yet: both may be accepted.
  await Promise.allSettled(
    [first, second].map((releaseId) => releases.linkChangeRequest({ ...rid(), releaseId, changeRequestId })),
  );
  const linked = async () =>
    Promise.all(
      [first, second].map(
        async (releaseId) =>
          (await releases.getRelease({ releaseId })).release?.linkedChangeRequestIds.includes(changeRequestId) ?? false,
      ),
    );
  const winner = await waitFor(
    async () => {
      const [one, two] = await linked();
      const kept = (await changes.getChange({ changeRequestId })).change?.linkedReleaseId;
      if (one === two || !kept) return undefined;
      return kept === (one ? first : second) ? kept : undefined;
    },
    { ...WAIT, description: "exactly one release linked, the one the change names" },
  );
  await settled(release, change, changeRequestId);
  expect(await linked()).toEqual([winner === first, winner === second]);
  expect((await changes.getChange({ changeRequestId })).change?.linkedReleaseId).toBe(winner);
  // The other release's history says why the link it took went (when it took one).
  const loser = winner === first ? second : first;
  const { entries } = await releases.getReleaseHistory({ releaseId: loser });
  const unlinked = entries.filter((e) => e.eventType === "rdm.release.v1.ReleaseChangeRequestUnlinked");
  expect(unlinked.map((e) => e.reason)).toEqual(
    unlinked.map(
      () => `change request ${changeRequestId} is linked to release ${winner}: a change implements one release`,
    ),
  );
});
