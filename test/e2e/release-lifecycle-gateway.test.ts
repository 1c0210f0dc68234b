// The gateway's release overview follows the release service step by step: after every command
// the view (phase, gate conditions, approvals, tasks, package, deadlines, history) equals what
// the service answers over gRPC; filters and the Server-Sent Events stream show the same events.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Role } from "@rdm/auth";
import { createGrpcClient } from "@rdm/grpc";
import {
  ApprovalStatus,
  LogEntryKind,
  ReleasePhase,
  ReleaseStatus,
  ReleaseType,
  RiskLevel,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import { e2eStack } from "./harness.js";

// Topics of this file's own: its gateway projects only the releases made here.
const stack = e2eStack("e2e-release-lifecycle");
let releaseAddress: string;
let gatewayUrl: string;

beforeAll(async () => {
  releaseAddress = (await stack.release({ env: { RELEASE_DEADLINE_POLL_MS: "100" } })).address;
  gatewayUrl = (await stack.gateway()).url;
});

afterAll(() => stack.stop());

/** `groups` is the token's groups claim: the approval boards (e.g. "cab") the subject sits on. */
const token = stack.token;
const client = async (subject: string, roles: Role[], groups: string[] = []) =>
  createGrpcClient(ReleaseService, releaseAddress, { token: await token(subject, roles, groups) });
const req = () => ({ requestId: randomUUID() });

async function getJson(path: string) {
  const response = await fetch(`${gatewayUrl}${path}`, {
    headers: { authorization: `Bearer ${await token("vera", ["viewer"])}` },
  });
  return { status: response.status, body: response.status === 200 ? await response.json() : undefined };
}

type Client = Awaited<ReturnType<typeof client>>;

/** Waits until the gateway has projected the release's current version, then compares the two views. */
async function expectGatewayMatches(service: Client, releaseId: string) {
  const { release } = await service.getRelease({ releaseId });
  if (!release) throw new Error("release not found");
  const view = await waitFor(
    async () => {
      const { body } = await getJson(`/v1/releases/${releaseId}`);
      return body?.version === Number(release.version) ? body : undefined;
    },
    { timeoutMs: 30_000, description: `gateway view at version ${release.version}` },
  );
  const gate = await service.getReleaseGate({ releaseId });
  expect(view).toMatchObject({
    phase: ReleasePhase[release.phase],
    status: ReleaseStatus[release.status],
    phaseEntry: release.phaseEntry,
    modelName: release.modelName,
    modelVersion: release.modelVersion,
    packageFrozen: release.packageFrozen,
    backOutPlan: release.backOutPlan,
    gate: {
      open: gate.open,
      nextPhase: gate.nextPhase ? ReleasePhase[gate.nextPhase] : null,
      conditions: gate.conditions.map((c) => ({ rule: c.rule, subject: c.subject, met: c.met })),
    },
  });
  expect(view.approvals).toEqual(
    release.approvals.map((a) =>
      expect.objectContaining({
        approvalId: a.approvalId,
        approverGroup: a.approverGroup,
        status: ApprovalStatus[a.status],
        votes: a.votes.map((v) => expect.objectContaining({ approver: v.approver, approved: v.approved })),
      }),
    ),
  );
  expect(view.tasks).toEqual(
    release.tasks.map((t) =>
      expect.objectContaining({ taskId: t.taskId, status: TaskStatus[t.status], required: t.required, name: t.name }),
    ),
  );
  expect(view.package).toEqual(release.package.map((a) => expect.objectContaining({ artifactId: a.artifactId })));
  expect(view.linkedChangeRequests.map((c: { changeRequestId: string }) => c.changeRequestId)).toEqual(
    release.linkedChangeRequestIds,
  );
  expect(view.deadlineMisses).toHaveLength(release.deadlineMisses.length);
  const { entries } = await service.getReleaseHistory({ releaseId });
  const history = (await getJson(`/v1/releases/${releaseId}/history`)).body;
  // The audit trail: every event with its actor, reason, and the ids that tie it to its cause.
  const trail = (e: {
    eventType: string;
    actor: string;
    reason: string;
    eventId: string;
    correlationId: string;
    causationId: string;
    requestId: string;
  }) => [e.eventType, e.actor, e.reason, e.eventId, e.correlationId, e.causationId, e.requestId];
  expect(history.entries.map(trail)).toEqual(entries.map(trail));
  expect(entries.every((e) => e.eventId !== "" && e.correlationId !== "")).toBe(true);
  return view;
}

/** Reads the SSE stream until `done` says enough; returns the parsed events. */
async function readEvents(path: string, done: (events: { event: string; data: { releaseId: string } }[]) => boolean) {
  const controller = new AbortController();
  const response = await fetch(`${gatewayUrl}${path}`, {
    headers: { authorization: `Bearer ${await token("vera", ["viewer"])}`, accept: "text/event-stream" },
    signal: controller.signal,
  });
  expect(response.headers.get("content-type")).toContain("text/event-stream");
  const events: { event: string; data: { releaseId: string } }[] = [];
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  // Long enough for every step before the awaited event, each of which may wait for the gateway.
  const timeout = setTimeout(() => controller.abort(), 120_000);
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      let split = buffer.indexOf("\n\n");
      while (split >= 0) {
        const block = buffer.slice(0, split);
        buffer = buffer.slice(split + 2);
        const fields = Object.fromEntries(
          block
            .split("\n")
            .filter((l) => !l.startsWith(":") && l.includes(": "))
            .map((l) => [l.slice(0, l.indexOf(": ")), l.slice(l.indexOf(": ") + 2)]),
        );
        if (fields.data) events.push({ event: fields.event ?? "message", data: JSON.parse(fields.data) });
        split = buffer.indexOf("\n\n");
      }
    }
  } finally {
    clearTimeout(timeout);
    controller.abort();
  }
  return events;
}

test("the gateway's release overview equals the service after every step", async () => {
  const manager = await client("rita", ["release-manager"]);
  const coordinator = await client("carl", ["release-coordinator"]);
  const ann = await client("ann", ["approver"], ["cab"]);
  const ben = await client("ben", ["approver"], ["cab"]);
  const owner = uniqueId("olivia");

  // Subscribe first (from now), so the stream must deliver what the steps below produce.
  const { body: before } = await getJson("/v1/releases?pageSize=1");
  expect(before).toBeDefined();
  const { release } = await manager.registerRelease({
    requestId: randomUUID(),
    title: "Payments 5.0",
    type: ReleaseType.MAJOR,
    owner,
    coordinator: "carl",
    stakeholders: ["sre"],
    risk: RiskLevel.HIGH,
  });
  const releaseId = release?.releaseId as string;
  await expectGatewayMatches(manager, releaseId);
  const streamed = readEvents(`/v1/releases/events?releaseId=${releaseId}&after=0`, (events) =>
    events.some((e) => e.event === "rdm.release.v1.ReleasePhaseAdvanced"),
  );

  const step = async (action: () => Promise<unknown>) => {
    await action();
    return expectGatewayMatches(manager, releaseId);
  };
  const completeTasks = async () => {
    const { release: r } = await manager.getRelease({ releaseId });
    for (const t of r?.tasks ?? [])
      if (t.required && t.phase === r?.phase && t.phaseEntry === r?.phaseEntry && t.status !== TaskStatus.DONE)
        await step(() => coordinator.completeReleaseTask({ ...req(), releaseId, taskId: t.taskId }));
  };
  const advance = () => step(() => coordinator.advanceReleasePhase({ ...req(), releaseId }));

  await completeTasks();
  await advance();
  await step(() =>
    manager.reworkRelease({ ...req(), releaseId, toPhase: ReleasePhase.REGISTRATION, reason: "record incomplete" }),
  );
  await completeTasks();
  await advance();
  await completeTasks();
  await advance();
  await step(() => coordinator.setBackOutPlan({ ...req(), releaseId, backOutPlan: "Roll back to 4.9" }));
  await step(() =>
    coordinator.recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.ISSUE, text: "vendor late" }),
  );
  await completeTasks();
  const inApproval = await advance();
  expect(inApproval.gate.conditions).toEqual([
    expect.objectContaining({ rule: "gate.approval_requested", met: false }),
  ]);

  await step(() => coordinator.linkChangeRequest({ ...req(), releaseId, changeRequestId: randomUUID() }));
  const requested = await step(() => coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: "cab" }));
  const first = requested.approvals[0].approvalId;
  await step(() => ann.approveRelease({ ...req(), releaseId, approvalId: first, comment: "fine" }));
  await step(() => ben.rejectRelease({ ...req(), releaseId, approvalId: first, reason: "needs load test" }));
  const { release: linked } = await manager.getRelease({ releaseId });
  await step(() =>
    coordinator.unlinkChangeRequest({
      ...req(),
      releaseId,
      changeRequestId: linked?.linkedChangeRequestIds[0] as string,
    }),
  );
  const again = await step(() => coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: "cab" }));
  const second = again.approvals[1].approvalId;
  await step(() => ann.approveRelease({ ...req(), releaseId, approvalId: second, comment: "" }));
  const approved = await step(() => ben.approveRelease({ ...req(), releaseId, approvalId: second, comment: "" }));
  expect(approved.gate.open).toBe(true);
  await advance();
  await step(() =>
    coordinator.attachReleaseArtifact({
      ...req(),
      releaseId,
      artifactId: "art-payments-5.0.0",
      name: "payments",
      version: "5.0.0",
      sha256: "c".repeat(64),
      configurationItemId: "ci-payments",
    }),
  );
  await completeTasks();
  const deploying = await advance();
  expect(deploying).toMatchObject({ phase: "DEPLOYMENT", packageFrozen: true, overdue: false });

  const filtered = async (query: string) =>
    ((await getJson(`/v1/releases?owner=${owner}&${query}`)).body.releases as { releaseId: string }[]).map(
      (r) => r.releaseId,
    );
  expect(await filtered("phase=DEPLOYMENT&type=MAJOR")).toEqual([releaseId]);
  expect(await filtered("phase=PLANNING")).toEqual([]);
  expect(await filtered("overdue=true")).toEqual([]);
  expect(await filtered("status=ACTIVE")).toEqual([releaseId]);

  const events = await streamed;
  expect(events.every((e) => e.data.releaseId === releaseId)).toBe(true);
  expect(events[0]?.event).toBe("rdm.release.v1.ReleaseRegistered");
}, 180_000);

test("a missed deadline shows as overdue with its breach at the gateway", async () => {
  const manager = await client("rita", ["release-manager"]);
  const name = uniqueId("quick")
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, 40);
  // A model whose first phase is due one second after it starts.
  await manager.createReleaseModel({
    requestId: randomUUID(),
    model: {
      name,
      phases: [
        { phase: ReleasePhase.REGISTRATION, deadline: { seconds: 1n } },
        { phase: ReleasePhase.PLANNING },
        { phase: ReleasePhase.CLOSED },
      ],
      escalationGrace: { seconds: 3600n },
    },
  });
  const owner = uniqueId("owner");
  const { release } = await manager.registerRelease({
    requestId: randomUUID(),
    title: "Quick one",
    type: ReleaseType.MINOR,
    owner,
    modelName: name,
  });
  const releaseId = release?.releaseId as string;
  const view = await waitFor(
    async () => {
      const { body } = await getJson(`/v1/releases/${releaseId}`);
      return body?.deadlineMisses?.length === 1 ? body : undefined;
    },
    { timeoutMs: 30_000, description: "the missed deadline at the gateway" },
  );
  expect(view).toMatchObject({ overdue: true, deadlineMisses: [{ phase: "REGISTRATION", escalated: false }] });
  await expectGatewayMatches(manager, releaseId);
  const listed = async (query: string) =>
    ((await getJson(`/v1/releases?owner=${owner}&${query}`)).body.releases as { releaseId: string }[]).map(
      (r) => r.releaseId,
    );
  expect(await listed("overdue=true")).toEqual([releaseId]);
  // Its model gives it no tasks: none of them is overdue.
  expect(await listed("overdueTasks=false")).toEqual([releaseId]);

  // An optional task already due is overdue while it can be done, in the phase it belongs to;
  // once the release has left that phase it cannot be, and the overview lists it no more.
  const dueAt = timestampFromDate(new Date(Date.now() - 60_000));
  await manager.addReleaseTask({ ...req(), releaseId, name: "notify support", required: false, dueAt });
  // The overview once the gateway has the task (the deadline job marks it overdue meanwhile).
  const overviewIn = (phase: string) =>
    waitFor(
      async () => {
        const { body } = await getJson(`/v1/releases/${releaseId}/overview`);
        const tasks = body?.tasks ?? [];
        return body?.phase === phase && tasks.length === 1 ? body : undefined;
      },
      { timeoutMs: 30_000, description: `the overview in ${phase} with the task` },
    );
  const named = (tasks: { name: string }[]) => tasks.map((t) => t.name);
  expect(named((await overviewIn("REGISTRATION")).deadlines.overdueTasks)).toEqual(["notify support"]);
  // Listed among those with overdue tasks once the deadline job has marked it.
  const listedOnce = (query: string, expected: string[]) =>
    waitFor(async () => (JSON.stringify(await listed(query)) === JSON.stringify(expected) ? true : undefined), {
      timeoutMs: 30_000,
      description: `${query}: ${expected.join(", ") || "none"}`,
    });
  await listedOnce("overdueTasks=true", [releaseId]);
  await manager.advanceReleasePhase({ ...req(), releaseId });
  expect(named((await overviewIn("PLANNING")).deadlines.overdueTasks)).toEqual([]);
  await listedOnce("overdueTasks=true", []);

  // An abandoned release's overdue task can never be done: neither listed nor in its overview.
  await manager.addReleaseTask({ ...req(), releaseId, name: "tell the vendor", required: false, dueAt });
  await listedOnce("overdueTasks=true", [releaseId]);
  await manager.abandonRelease({ ...req(), releaseId, reason: "superseded by 5.1" });
  await listedOnce("status=ABANDONED", [releaseId]);
  expect(await listed("overdueTasks=true")).toEqual([]);
  expect(await listed("overdueTasks=false")).toEqual([releaseId]);
  expect((await getJson(`/v1/releases/${releaseId}/overview`)).body.deadlines.overdueTasks).toEqual([]);
});

test("more open event streams than database connections: they share one listener and the API still answers", async () => {
  const manager = await client("rita", ["release-manager"]);
  const coordinator = await client("carl", ["release-coordinator"]);
  const { release } = await manager.registerRelease({
    requestId: randomUUID(),
    title: "Watched by many dashboards",
    type: ReleaseType.MINOR,
    owner: uniqueId("owner"),
    coordinator: "carl",
  });
  const releaseId = release?.releaseId as string;
  await expectGatewayMatches(manager, releaseId);

  // The gateway's pool holds 20 connections; a connection per stream would starve everything else.
  const streams = Array.from({ length: 30 }, () =>
    readEvents(`/v1/releases/events?releaseId=${releaseId}&after=0`, (events) =>
      events.some((e) => e.event === "rdm.release.v1.ReleaseBackOutPlanSet"),
    ),
  );
  const { status } = await getJson(`/v1/releases/${releaseId}`);
  expect(status).toBe(200);
  await coordinator.setBackOutPlan({ ...req(), releaseId, backOutPlan: "Redeploy the previous build" });
  const received = await Promise.all(streams);
  for (const events of received) {
    expect(events[0]?.event).toBe("rdm.release.v1.ReleaseRegistered");
    expect(events.at(-1)?.event).toBe("rdm.release.v1.ReleaseBackOutPlanSet");
  }
  await expectGatewayMatches(manager, releaseId);
});
