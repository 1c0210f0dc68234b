// The change and release services and the gateway together: changes driven over gRPC reach the
// gateway's change views and calendar through rdm.change.events.v1, releases reach the calendar
// through rdm.release.events.v1, and the views say what the services say.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createGrpcClient } from "@rdm/grpc";
import {
  ApprovalDecision,
  ChangeImpact,
  type ChangeRequest,
  ChangeState,
  ChangeType,
  ChangeUrgency,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { type TimeWindow, TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { type Release, ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import { e2eStack } from "./harness.js";

// Topics of this file's own: its gateways project only the changes and releases made here.
const stack = e2eStack("e2e-change-calendar");
/** `groups` is the token's groups claim: the approval boards (default "cab" and "ecab") the subject sits on. */
const token = stack.token;
let address: string;
let releaseAddress: string;
let gatewayUrl: string;

beforeAll(async () => {
  address = (await stack.change()).address;
  releaseAddress = (await stack.release()).address;
  gatewayUrl = (await stack.gateway()).url;
});

afterAll(() => stack.stop());

const hours = (base: Date, h: number) => new Date(base.getTime() + h * 3_600_000);
const window = (base: Date, from: number, to: number): TimeWindow =>
  create(TimeWindowSchema, { start: timestampFromDate(hours(base, from)), end: timestampFromDate(hours(base, to)) });
const iso = (w: TimeWindow | undefined) => ({
  start: w?.start ? timestampDate(w.start).toISOString() : null,
  end: w?.end ? timestampDate(w.end).toISOString() : null,
});
const rid = () => ({ requestId: randomUUID() });

async function getJson(path: string, url = gatewayUrl) {
  const response = await fetch(`${url}${path}`, {
    headers: { authorization: `Bearer ${await token("vera", ["viewer"])}` },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & { [k: string]: never } };
}

/** The gateway's view of one change, once it has caught up with `version`. */
async function gatewayChange(change: ChangeRequest) {
  return waitFor(
    async () => {
      const { status, body } = await getJson(`/v1/changes/${change.changeRequestId}`);
      return status === 200 && BigInt(body.version as unknown as number) === change.version ? body : undefined;
    },
    { timeoutMs: 30_000, description: `gateway at version ${change.version} of ${change.key}` },
  );
}

/** The gateway's view of one release, once it has caught up with `version`. */
async function gatewayRelease(release: Release) {
  return waitFor(
    async () => {
      const { status, body } = await getJson(`/v1/releases/${release.releaseId}`);
      return status === 200 && BigInt(body.version as unknown as number) === release.version ? body : undefined;
    },
    { timeoutMs: 30_000, description: `gateway at version ${release.version} of ${release.key}` },
  );
}

/** What the calendar should show for a release the service returned. */
const expectedRelease = (r: Release) => ({
  releaseId: r.releaseId,
  key: r.key,
  title: r.title,
  type: ReleaseType[r.type],
  phase: ReleasePhase[r.phase],
  owner: r.owner,
  window: iso(r.plannedWindow),
});

/** What the gateway should show for a change the service returned. */
const expected = (c: ChangeRequest) => ({
  changeRequestId: c.changeRequestId,
  key: c.key,
  type: ChangeType[c.type],
  state: ChangeState[c.state],
  title: c.title,
  requester: c.requester,
  affectedCiIds: c.affectedCiIds,
  environments: c.environments,
  backoutPlan: c.backoutPlan,
  impact: ChangeImpact[c.impact],
  urgency: ChangeUrgency[c.urgency],
  requiredApprovals: c.requiredApprovals,
  approvals: c.approvals.map((a) =>
    expect.objectContaining({ approver: a.approver, decision: ApprovalDecision[a.decision] }),
  ),
  window: iso(c.plannedWindow),
  linkedReleaseId: c.linkedReleaseId,
  overriddenFreezeIds: c.overriddenFreezeIds,
  freezeOverrideJustification: c.freezeOverrideJustification,
  schedulingCollisions: c.collisions.map((x) => ({
    changeRequestId: x.changeRequestId,
    key: x.key,
    state: ChangeState[x.state],
    window: iso(x.window),
    ciIds: x.ciIds,
  })),
  version: Number(c.version),
});

test("the gateway's change list, detail and calendar match the change service", async () => {
  const manager = createGrpcClient(ChangeService, address, { token: await token("carl", ["change-manager"]) });
  // Anna sits on both boards (she approves the emergency change too), Ben on the CAB.
  const anna = createGrpcClient(ChangeService, address, { token: await token("anna", ["approver"], ["cab", "ecab"]) });
  const ben = createGrpcClient(ChangeService, address, { token: await token("ben", ["approver"], ["cab"]) });
  const base = new Date(Date.UTC(2032, 4, 1, 20));
  const frozenCi = uniqueId("ci-ledger");
  const sharedCi = uniqueId("ci-checkout");

  const { freezeWindow } = await manager.declareFreezeWindow({
    ...rid(),
    name: "Quarter close",
    window: window(base, -2, 10),
    scope: { ciIds: [frozenCi] },
  });

  async function through(type: ChangeType, ciIds: string[], quorum: number) {
    const { change } = await manager.raiseChange({
      ...rid(),
      type,
      title: `${ChangeType[type]} change on ${ciIds.join(", ")}`,
      justification: "needed",
      affectedCiIds: ciIds,
      environments: ["production"],
      implementationPlan: "apply",
      backoutPlan: "revert",
      linkedReleaseId: randomUUID(),
    });
    const id = change?.changeRequestId as string;
    await manager.submitChange({ ...rid(), changeRequestId: id });
    await manager.assessChange({
      ...rid(),
      changeRequestId: id,
      impact: ChangeImpact.MEDIUM,
      urgency: ChangeUrgency.HIGH,
      requiredApprovals: quorum,
    });
    await anna.approveChange({ ...rid(), changeRequestId: id, comment: "ok" });
    if (quorum > 1) await ben.approveChange({ ...rid(), changeRequestId: id });
    return id;
  }

  const a = await through(ChangeType.NORMAL, [sharedCi], 2);
  const b = await through(ChangeType.NORMAL, [sharedCi, uniqueId("ci-cart")], 1);
  const e = await through(ChangeType.EMERGENCY, [frozenCi], 1);
  const scheduledA = await manager.scheduleChange({ ...rid(), changeRequestId: a, window: window(base, 0, 2) });
  const scheduledB = await manager.scheduleChange({ ...rid(), changeRequestId: b, window: window(base, 1, 3) });
  const scheduledE = await manager.scheduleChange({
    ...rid(),
    changeRequestId: e,
    window: window(base, 4, 5),
    freezeOverrideJustification: "ledger corruption hotfix",
  });
  expect(scheduledB.collisions.map((c) => c.changeRequestId)).toEqual([a]);

  // Detail: the same change as the service's, plus the collisions that hold now (both ways).
  // (A's live collisions need B's events too: A is read again once all three caught up.)
  await gatewayChange(scheduledA.change as ChangeRequest);
  const viewB = await gatewayChange(scheduledB.change as ChangeRequest);
  const viewE = await gatewayChange(scheduledE.change as ChangeRequest);
  const viewA = await gatewayChange(scheduledA.change as ChangeRequest);
  expect(viewA).toMatchObject(expected(scheduledA.change as ChangeRequest));
  expect(viewB).toMatchObject(expected(scheduledB.change as ChangeRequest));
  expect(viewE).toMatchObject(expected(scheduledE.change as ChangeRequest));
  expect(viewA.approvals).toHaveLength(2);
  expect(viewE).toMatchObject({ board: "ECAB", overriddenFreezeIds: [freezeWindow?.freezeWindowId] });
  expect((viewA.collisions as unknown as { changeRequestId: string }[]).map((c) => c.changeRequestId)).toEqual([b]);
  expect(viewB.collisions as unknown as { changeRequestId: string; ciIds: string[] }[]).toEqual([
    expect.objectContaining({ changeRequestId: a, ciIds: [sharedCi] }),
  ]);

  // List: filtered by CI, newest first, as the service lists them.
  const listed = await getJson(`/v1/changes?ciId=${sharedCi}&state=SCHEDULED`);
  const service = await manager.listChanges({ ciId: sharedCi, states: [ChangeState.SCHEDULED] });
  expect((listed.body.changes as unknown as { changeRequestId: string }[]).map((c) => c.changeRequestId)).toEqual(
    service.changes.map((c) => c.changeRequestId),
  );
  expect(service.changes.map((c) => c.changeRequestId)).toEqual([b, a]);
  // One per page: the page token leads from B to A, then ends.
  const first = await getJson(`/v1/changes?ciId=${sharedCi}&state=SCHEDULED&pageSize=1`);
  const nextPage = first.body.nextPageToken as unknown as string;
  const second = await getJson(`/v1/changes?ciId=${sharedCi}&state=SCHEDULED&pageSize=1&pageToken=${nextPage}`);
  const idsOf = (page: typeof first) =>
    (page.body.changes as unknown as { changeRequestId: string }[]).map((c) => c.changeRequestId);
  expect([...idsOf(first), ...idsOf(second)]).toEqual([b, a]);
  expect(second.body.nextPageToken).toBeNull();

  // Calendar: the same changes and freezes for the range, and the collision between A and B.
  const range = window(base, -1, 12);
  const from = iso(range).start as string;
  const to = iso(range).end as string;

  // Releases: one planned in the range; two just outside it (ending at `from`, starting at `to`:
  // the range is half-open); one in it but abandoned, which frees the calendar.
  const releases = createGrpcClient(ReleaseService, releaseAddress, {
    token: await token("rita", ["release-manager"]),
  });
  const register = async (title: string, planned: TimeWindow) =>
    (
      await releases.registerRelease({
        ...rid(),
        title,
        type: ReleaseType.MINOR,
        owner: uniqueId("olivia"),
        plannedWindow: planned,
      })
    ).release as Release;
  const planned = await register("Checkout 2.4", window(base, 2, 6));
  const before = await register("Ledger 1.9", window(base, -3, -1));
  const after = await register("Ledger 2.0", window(base, 12, 14));
  const dropped = await register("Cart 3.1", window(base, 3, 5));
  const abandoned = (
    await releases.abandonRelease({ ...rid(), releaseId: dropped.releaseId, reason: "merged into Checkout 2.4" })
  ).release as Release;
  expect(abandoned.version).toBeGreaterThan(dropped.version);
  for (const r of [planned, before, after, abandoned]) await gatewayRelease(r);
  // Freeze windows are their own streams (other partitions): wait for the freeze too.
  const calendar = await waitFor(
    async () => {
      const response = await getJson(`/v1/calendar?from=${from}&to=${to}`);
      const freezes = (response.body.freezeWindows ?? []) as unknown as { freezeWindowId: string }[];
      return freezes.some((f) => f.freezeWindowId === freezeWindow?.freezeWindowId) ? response : undefined;
    },
    { timeoutMs: 30_000, description: "freeze window in the gateway calendar" },
  );
  const serviceCalendar = await manager.getChangeCalendar({ window: range });
  expect(calendar.status).toBe(200);
  const ids = (items: unknown, field: string) => (items as Record<string, string>[]).map((item) => item[field]).sort();
  expect(ids(calendar.body.changes, "changeRequestId")).toEqual(
    serviceCalendar.changes.map((c) => c.changeRequestId).sort(),
  );
  expect(ids(calendar.body.changes, "changeRequestId")).toEqual([a, b, e].sort());
  expect(ids(calendar.body.freezeWindows, "freezeWindowId")).toEqual(
    serviceCalendar.freezeWindows.map((f) => f.freezeWindowId).sort(),
  );
  expect(calendar.body.releases).toEqual([expectedRelease(planned)]);
  expect(calendar.body.collisions).toEqual([
    {
      changes: expect.arrayContaining([
        expect.objectContaining({ changeRequestId: a }),
        expect.objectContaining({ changeRequestId: b }),
      ]),
      ciIds: [sharedCi],
    },
  ]);

  // Bad ranges are a 400, not a crash.
  expect((await getJson(`/v1/calendar?from=${to}&to=${from}`)).status).toBe(400);

  // Replay: a new gateway (fresh database and consumer group) rebuilds the same views from the topic.
  const rebuilt = await stack.gateway();
  // A's and B's live collisions come from each other's events, on other partitions: compare the
  // views only once all three have caught up.
  const views = [viewA, viewB, viewE];
  const rebuiltViews = async () =>
    Promise.all(views.map((v) => getJson(`/v1/changes/${v.changeRequestId}`, rebuilt.url)));
  await waitFor(
    async () =>
      (await rebuiltViews()).every(({ status, body }, i) => status === 200 && body.version === views[i]?.version),
    { timeoutMs: 30_000, description: "rebuilt gateway caught up with all three changes" },
  );
  expect((await rebuiltViews()).map(({ body }) => body)).toEqual(views);
  const same = JSON.stringify(calendar.body);
  await waitFor(
    async () => JSON.stringify((await getJson(`/v1/calendar?from=${from}&to=${to}`, rebuilt.url)).body) === same,
    { timeoutMs: 30_000, description: "rebuilt calendar equal to the live one" },
  );
}, 180_000);
