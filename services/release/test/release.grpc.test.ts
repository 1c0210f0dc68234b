// The release lifecycle through the real gRPC API on real PostgreSQL (and the Kafka protocol
// for change request events): full standard and emergency paths, each gate refusal reason,
// quorum, board membership and separation of duties, racing approvals, idempotent retries,
// model versions, lists, planning updates, the roles each RPC admits, and the query tables
// rebuilt from the event streams.
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { ROLES, type Role } from "@rdm/auth";
import { rebuildQueryTables } from "@rdm/command-handler";
import { EventStore } from "@rdm/eventstore";
import { errorDetails } from "@rdm/grpc";
import { CHANGE_EVENTS_TOPIC, createKafka, createProducer, publishEvents } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeImplementationStartedSchema,
  ChangeRequestAuthorizedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestReleaseLinkedSchema,
  ChangeRequestReleaseUnlinkedSchema,
  ChangeRequestScheduledSchema,
  ChangeRequestSubmittedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ReleaseChangeRequestLinkedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  ApprovalStatus,
  LogEntryKind,
  type Release,
  ReleasePhase,
  ReleaseSchema,
  ReleaseStatus,
  ReleaseType,
  ReviewOutcome,
  RiskLevel,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ListReleasesRequestSchema } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { encodePageToken, pageTokenScope } from "@rdm/runtime";
import { PublishedStreams, repeatWhilePending, runBuiltCommand, uniqueId, waitFor } from "@rdm/testkit";
import type { Producer } from "kafkajs";
import pg from "pg";
import { releaseServiceRoles } from "../src/api/release-service.js";
import { releaseQueryTables } from "../src/store/query-tables.js";
import { type Harness, type ReleaseClient, registration, req, startHarness } from "./harness.js";
import { queryTableRows } from "./query-table-rows.js";

let h: Harness;
let manager: ReleaseClient; // rita, release-manager
let coordinator: ReleaseClient; // carl, coordinator of the releases
let ann: ReleaseClient; // approvers on the CAB (ann also on the ECAB)
let ben: ReleaseClient;
let cid: ReleaseClient;
let producer: Producer;

beforeAll(async () => {
  h = await startHarness();
  manager = await h.client("rita", ["release-manager"]);
  coordinator = await h.client("carl", ["release-coordinator"]);
  ann = await h.client("ann", ["approver"], { groups: ["cab", "ecab"] });
  ben = await h.client("ben", ["approver"], { groups: ["cab"] });
  cid = await h.client("cid", ["approver"], { groups: ["cab"] });
  const kafka = createKafka({
    brokers: h.brokers,
    clientId: uniqueId("it-change"),
    logger: createLogger("test", "warn"),
  });
  producer = createProducer(kafka);
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await h?.stop();
});

const failure = async (call: Promise<unknown>) => {
  const error = await call.then(
    () => {
      throw new Error("call succeeded");
    },
    (e: unknown) => e,
  );
  return errorDetails(error);
};

async function register(overrides: Record<string, unknown> = {}): Promise<Release> {
  const { release } = await manager.registerRelease(registration(overrides));
  if (!release) throw new Error("no release");
  return release;
}

async function get(releaseId: string): Promise<Release> {
  const { release } = await manager.getRelease({ releaseId });
  if (!release) throw new Error("no release");
  return release;
}

async function completeRequiredTasks(releaseId: string) {
  const r = await get(releaseId);
  for (const t of r.tasks) {
    if (t.required && t.phase === r.phase && t.phaseEntry === r.phaseEntry && t.status !== TaskStatus.DONE)
      await coordinator.completeReleaseTask({ ...req(), releaseId, taskId: t.taskId });
  }
}

async function approve(releaseId: string, group: string, approvers: ReleaseClient[]) {
  const { release } = await coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: group });
  const approvalId = release?.approvals.at(-1)?.approvalId as string;
  for (const approver of approvers) await approver.approveRelease({ ...req(), releaseId, approvalId, comment: "ok" });
  return approvalId;
}

async function advance(releaseId: string, client: ReleaseClient = coordinator) {
  const { release } = await client.advanceReleasePhase({ ...req(), releaseId });
  return release as Release;
}

/** Publishes a change request event the way the change service's relay would. */
async function publishChange(changeRequestId: string, state: ChangeState, version: number) {
  const schema = state === ChangeState.AUTHORIZED ? ChangeRequestAuthorizedSchema : ChangeRequestSubmittedSchema;
  const eventId = randomUUID();
  const event = create(schema, {
    metadata: create(EventMetadataSchema, {
      eventId,
      occurredAt: timestampFromDate(new Date()),
      actor: "chris",
      streamId: changeRequestId,
      streamVersion: BigInt(version),
    }),
    changeRequestId,
    state,
  } as never);
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [
    {
      id: eventId,
      type: schema.typeName,
      source: "rdm/change",
      subject: changeRequestId,
      time: new Date(),
      data: toBinary(schema, event as never),
    },
  ]);
}

test("a standard release from registration to close, every step recorded with its actor", async () => {
  const registered = await register();
  const releaseId = registered.releaseId;
  expect(registered).toMatchObject({
    phase: ReleasePhase.REGISTRATION,
    status: ReleaseStatus.ACTIVE,
    modelName: "standard",
    modelVersion: 1,
  });
  expect(registered.key).toMatch(/^REL-\d{4}-\d{4}$/);

  await coordinator.setBackOutPlan({ ...req(), releaseId, backOutPlan: "Redeploy payments 4.1 from the DML" });
  await coordinator.recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.RISK, text: "schema migration" });
  const { release: withTask } = await coordinator.addReleaseTask({
    ...req(),
    releaseId,
    name: "Notify the bank",
    required: true,
  });
  const adHoc = withTask?.tasks.find((t) => t.name === "Notify the bank")?.taskId as string;
  await coordinator.assignReleaseTask({ ...req(), releaseId, taskId: adHoc, assignee: "dana" });
  const deployer = await h.client("dana", ["deployer"]);
  await deployer.startReleaseTask({ ...req(), releaseId, taskId: adHoc });

  for (const phase of [ReleasePhase.REGISTRATION, ReleasePhase.ASSESSMENT, ReleasePhase.PLANNING]) {
    expect((await get(releaseId)).phase).toBe(phase);
    await completeRequiredTasks(releaseId);
    await advance(releaseId);
  }
  expect((await get(releaseId)).phase).toBe(ReleasePhase.APPROVAL);
  await approve(releaseId, "cab", [ann, ben]);
  await advance(releaseId);

  await deployer.attachReleaseArtifact({
    ...req(),
    releaseId,
    artifactId: "art-payments-api-4.2.0",
    name: "payments-api",
    version: "4.2.0",
    sha256: "b".repeat(64),
    configurationItemId: "ci-payments-api",
  });
  await completeRequiredTasks(releaseId);
  const deploying = await advance(releaseId);
  expect(deploying).toMatchObject({ phase: ReleasePhase.DEPLOYMENT, packageFrozen: true });
  const frozen = await failure(
    deployer.detachReleaseArtifact({ ...req(), releaseId, artifactId: "art-payments-api-4.2.0" }),
  );
  expect([frozen.code, frozen.preconditionFailure?.violations[0]?.type]).toEqual([
    status.FAILED_PRECONDITION,
    "package.frozen",
  ]);

  for (const _ of [ReleasePhase.DEPLOYMENT, ReleasePhase.VERIFICATION]) {
    await completeRequiredTasks(releaseId);
    await advance(releaseId);
  }
  expect((await get(releaseId)).phase).toBe(ReleasePhase.REVIEW);
  const early = await failure(manager.closeRelease({ ...req(), releaseId }));
  expect(early.preconditionFailure?.violations[0]?.type).toBe("close.review_required");
  await coordinator.recordPostImplementationReview({
    ...req(),
    releaseId,
    outcome: ReviewOutcome.SUCCESSFUL,
    lessonsLearned: "Smooth",
    followUpActions: ["Automate the smoke test"],
  });
  const { release: closed } = await manager.closeRelease({ ...req(), releaseId });
  expect(closed).toMatchObject({ phase: ReleasePhase.CLOSED, status: ReleaseStatus.CLOSED });
  expect(closed?.package.map((a) => a.configurationItemId)).toEqual(["ci-payments-api"]);
  expect(closed?.backOutPlan).toContain("4.1");
  expect(closed?.review?.followUpActions).toEqual(["Automate the smoke test"]);

  const { entries } = await manager.getReleaseHistory({ releaseId });
  const advanced = entries.filter((e) => e.eventType === "rdm.release.v1.ReleasePhaseAdvanced");
  expect(advanced).toHaveLength(7);
  expect(advanced.every((e) => e.actor === "carl")).toBe(true);
  const grants = entries.filter((e) => e.eventType === "rdm.release.v1.ReleaseApprovalGranted").map((e) => e.actor);
  expect(grants).toEqual(["ann", "ben"]);
  expect(entries.at(-2)).toMatchObject({ eventType: "rdm.release.v1.ReleaseClosed", actor: "rita" });
  expect(entries.map((e) => Number(e.version))).toEqual(entries.map((_, i) => i + 1));
});

test("the emergency path: short model, ECAB quorum of one", async () => {
  const release = await register({ type: ReleaseType.EMERGENCY, title: "Hotfix CVE" });
  const releaseId = release.releaseId;
  expect(release.modelName).toBe("emergency");
  await advance(releaseId);
  expect((await get(releaseId)).phase).toBe(ReleasePhase.APPROVAL);
  await approve(releaseId, "ecab", [ann]);
  await advance(releaseId);
  await completeRequiredTasks(releaseId);
  await advance(releaseId);
  await completeRequiredTasks(releaseId);
  const reviewing = await advance(releaseId);
  expect(reviewing.phase).toBe(ReleasePhase.REVIEW);
  await coordinator.recordPostImplementationReview({
    ...req(),
    releaseId,
    outcome: ReviewOutcome.BACKED_OUT,
    lessonsLearned: "",
    followUpActions: [],
  });
  const { release: closed } = await manager.closeRelease({ ...req(), releaseId });
  expect(closed?.status).toBe(ReleaseStatus.CLOSED);
  const phases = (await manager.getReleaseHistory({ releaseId })).entries.filter(
    (e) => e.eventType === "rdm.release.v1.ReleasePhaseAdvanced",
  );
  expect(phases).toHaveLength(4);
});

test("every gate refusal reason is listed as a PreconditionFailure violation", async () => {
  const releaseId = (await register()).releaseId;
  const tasksOpen = await failure(advance(releaseId));
  expect(tasksOpen.code).toBe(status.FAILED_PRECONDITION);
  expect(tasksOpen.preconditionFailure?.violations.map((v) => v.type)).toEqual(["gate.required_task_done"]);

  for (let i = 0; i < 3; i++) {
    await completeRequiredTasks(releaseId);
    await advance(releaseId);
  }
  const chgOk = randomUUID();
  const chgPending = randomUUID();
  const chgUnknown = randomUUID();
  for (const id of [chgOk, chgPending, chgUnknown])
    await coordinator.linkChangeRequest({ ...req(), releaseId, changeRequestId: id });
  await publishChange(chgOk, ChangeState.AUTHORIZED, 4);
  await publishChange(chgPending, ChangeState.SUBMITTED, 2);
  await waitFor(
    async () => {
      const gate = await manager.getReleaseGate({ releaseId });
      return (
        gate.conditions.filter((c) => c.rule === "gate.linked_change_state" && !c.description.includes("unknown"))
          .length === 2
      );
    },
    { timeoutMs: 30_000, description: "change events in the release service's read model" },
  );

  const refusal = await failure(advance(releaseId));
  expect(refusal.preconditionFailure?.violations.map((v) => [v.type, v.subject])).toEqual([
    ["gate.approval_requested", "cab"],
    ["gate.linked_change_state", chgPending],
    ["gate.linked_change_state", chgUnknown],
  ]);

  const { release } = await coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: "cab" });
  const approvalId = release?.approvals[0]?.approvalId as string;
  await ann.approveRelease({ ...req(), releaseId, approvalId, comment: "" });
  expect((await failure(advance(releaseId))).preconditionFailure?.violations[0]).toMatchObject({
    type: "gate.approval_granted",
    subject: "cab",
    description: "cab approvals 1 of 2",
  });
  await ben.rejectRelease({ ...req(), releaseId, approvalId, reason: "no load test" });
  expect((await failure(advance(releaseId))).preconditionFailure?.violations[0]).toMatchObject({
    type: "gate.approval_rejected",
    subject: "cab",
  });

  await approve(releaseId, "cab", [ann, ben]);
  await coordinator.unlinkChangeRequest({ ...req(), releaseId, changeRequestId: chgUnknown });
  await publishChange(chgPending, ChangeState.AUTHORIZED, 5);
  await waitFor(async () => (await manager.getReleaseGate({ releaseId })).open, {
    timeoutMs: 30_000,
    description: "gate open after the change was authorized",
  });
  expect((await advance(releaseId)).phase).toBe(ReleasePhase.BUILD_AND_TEST);
});

test("a change raised with a linked release is linked there, caused by it; another release may not link it; a change keeping its first release unlinks it from a second", async () => {
  const changes = new PublishedStreams("chris");
  const publish = (event: ReturnType<typeof changes.event>) =>
    publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [event]);
  const first = (await register()).releaseId;
  const second = (await register()).releaseId;

  // Linked on the change side: the release links it too, caused by the change's event.
  const changeId = randomUUID();
  const raised = changes.event("rdm/change", ChangeRequestRaisedSchema, changeId, {
    changeRequestId: changeId,
    linkedReleaseId: first,
    state: ChangeState.DRAFT,
    key: "CHG-2026-0042",
    title: "Upgrade the payments database",
  });
  await publish(raised);
  await waitFor(async () => (await get(first)).linkedChangeRequestIds.includes(changeId), {
    timeoutMs: 30_000,
    description: "the change's link mirrored on the release",
  });
  expect((await get(first)).linkedChangeRequestIds).toEqual([changeId]);
  const db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query(
      "SELECT metadata FROM events WHERE stream_id = $1 AND type = 'rdm.release.v1.ReleaseChangeRequestLinked'",
      [first],
    );
    expect(rows.map((r) => r.metadata)).toEqual([expect.objectContaining({ actor: "chris", causationId: raised.id })]);
  } finally {
    await db.end();
  }

  // A change implements one release: the other one's link is refused, naming the first.
  const refused = await failure(
    coordinator.linkChangeRequest({ ...req(), releaseId: second, changeRequestId: changeId }),
  );
  expect(refused.code).toBe(status.FAILED_PRECONDITION);
  expect(refused.message).toContain(first);
  expect(refused.preconditionFailure?.violations.map((v) => [v.type, v.subject])).toEqual([
    ["change.linked_elsewhere", changeId],
  ]);
  expect((await get(second)).linkedChangeRequestIds).toEqual([]);

  // A link this service could not refuse yet (it had heard nothing of the change) loses to the
  // change's first release: the change answers "not linked to you" and the release unlinks it.
  const raced = randomUUID();
  await coordinator.linkChangeRequest({ ...req(), releaseId: first, changeRequestId: raced });
  await coordinator.linkChangeRequest({ ...req(), releaseId: second, changeRequestId: raced });
  await publish(
    changes.event("rdm/change", ChangeRequestReleaseUnlinkedSchema, raced, {
      changeRequestId: raced,
      releaseId: second,
      linkedReleaseId: first,
      state: ChangeState.SUBMITTED,
    }),
  );
  await waitFor(async () => !(await get(second)).linkedChangeRequestIds.includes(raced), {
    timeoutMs: 30_000,
    description: "the losing link removed from the second release",
  });
  // A link made before this service heard the change was closed: the change refuses it, keeping
  // its release (or none), and the release unlinks it.
  for (const keeper of [first, ""]) {
    const closed = randomUUID();
    await coordinator.linkChangeRequest({ ...req(), releaseId: second, changeRequestId: closed });
    await publish(
      changes.event("rdm/change", ChangeRequestReleaseUnlinkedSchema, closed, {
        changeRequestId: closed,
        releaseId: second,
        linkedReleaseId: keeper,
        state: ChangeState.CLOSED,
        refusedClosed: true,
      }),
    );
    await waitFor(async () => !(await get(second)).linkedChangeRequestIds.includes(closed), {
      timeoutMs: 30_000,
      description: `the link refused by the closed change (kept: "${keeper}") removed from the second release`,
    });
  }
  // The second release's history says why each of those links went.
  const { entries } = await coordinator.getReleaseHistory({ releaseId: second });
  expect(
    entries.filter((e) => e.eventType === "rdm.release.v1.ReleaseChangeRequestUnlinked").map((e) => e.reason),
  ).toEqual([
    `change request ${raced} is linked to release ${first}: a change implements one release`,
    expect.stringMatching(/^change request .* was closed before the link reached it$/),
    expect.stringMatching(/^change request .* was closed before the link reached it$/),
  ]);
  // The change's own unlink (the mirror of a release's unlink) asks nothing of any release.
  const kept = randomUUID();
  await coordinator.linkChangeRequest({ ...req(), releaseId: second, changeRequestId: kept });
  // It names the release that still lists the change: an answer to its link would unlink it.
  const mirrored = changes.event("rdm/change", ChangeRequestReleaseUnlinkedSchema, kept, {
    changeRequestId: kept,
    releaseId: second,
    linkedReleaseId: "",
    state: ChangeState.SUBMITTED,
  });
  await publish(mirrored);
  const handled = new pg.Client({ connectionString: h.databaseUrl });
  await handled.connect();
  try {
    await waitFor(
      async () =>
        (await handled.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [mirrored.id])).rowCount === 1,
      { timeoutMs: 30_000, description: "the change's unlink handled" },
    );
  } finally {
    await handled.end();
  }
  expect((await get(second)).linkedChangeRequestIds).toEqual([kept]);
});

test("a change moved from one release to another stays linked to the second when the change service hears the second's link before the first's unlink", async () => {
  const changes = new PublishedStreams("chris");
  const publish = (...events: ReturnType<typeof changes.event>[]) =>
    publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, events);
  const [first, second, third] = [
    (await register()).releaseId,
    (await register()).releaseId,
    (await register()).releaseId,
  ];
  const changeId = randomUUID();
  const change = { changeRequestId: changeId, state: ChangeState.SUBMITTED };
  await linkTo(first, changeId);
  await publish(
    changes.event("rdm/change", ChangeRequestReleaseLinkedSchema, changeId, { ...change, linkedReleaseId: first }),
  );
  const db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  try {
    await waitFor(
      async () =>
        (
          await db.query(
            "SELECT 1 FROM change_request_states WHERE change_request_id = $1 AND linked_release_id = $2",
            [changeId, first],
          )
        ).rowCount === 1,
      { timeoutMs: 30_000, description: "the change's link to the first release heard of" },
    );
    expect((await failure(linkTo(second, changeId))).code).toBe(status.FAILED_PRECONDITION);

    // Moved: the first release lets it go, then the second links it, and a third in the same
    // moment (the change service has not cleared its link yet: neither is refused).
    await coordinator.unlinkChangeRequest({ ...req(), releaseId: first, changeRequestId: changeId });
    await linkTo(second, changeId);
    await linkTo(third, changeId);
    // The change service read both links before the first's unlink (other partitions): it answered
    // each "linked to the first", then the first's unlink cleared its link; all in one fetch.
    const answer = (releaseId: string) =>
      changes.event("rdm/change", ChangeRequestReleaseUnlinkedSchema, changeId, {
        ...change,
        releaseId,
        linkedReleaseId: first,
      });
    const cleared = changes.event("rdm/change", ChangeRequestReleaseUnlinkedSchema, changeId, {
      ...change,
      releaseId: first,
      linkedReleaseId: "",
    });
    await publish(answer(second), answer(third), cleared);
    // Each says its link again, caused by the cleared link.
    const linksOf = async (releaseId: string) =>
      (
        await db.query<{ data: Buffer; metadata: { causationId?: string } }>(
          "SELECT data, metadata FROM events WHERE stream_id = $1 AND type = $2 ORDER BY version",
          [releaseId, ReleaseChangeRequestLinkedSchema.typeName],
        )
      ).rows.map((r) => ({
        relinked: fromBinary(ReleaseChangeRequestLinkedSchema, r.data).relinked,
        causationId: r.metadata.causationId,
      }));
    await waitFor(async () => (await linksOf(third)).length === 2, {
      timeoutMs: 30_000,
      description: "the third release's link said again",
    });
    for (const releaseId of [second, third]) {
      expect((await linksOf(releaseId)).map((l) => l.relinked)).toEqual([false, true]);
      expect((await linksOf(releaseId))[1]?.causationId).toBe(cleared.id);
      expect((await get(releaseId)).linkedChangeRequestIds).toEqual([changeId]);
    }
    expect((await get(first)).linkedChangeRequestIds).toEqual([]);

    // The change takes the first it hears of and answers the other, which then lets it go.
    await publish(
      changes.event("rdm/change", ChangeRequestReleaseLinkedSchema, changeId, { ...change, linkedReleaseId: second }),
      changes.event("rdm/change", ChangeRequestReleaseUnlinkedSchema, changeId, {
        ...change,
        releaseId: third,
        linkedReleaseId: second,
      }),
    );
    await waitFor(async () => (await get(third)).linkedChangeRequestIds.length === 0, {
      timeoutMs: 30_000,
      description: "the third release lets the change go",
    });
    expect((await get(second)).linkedChangeRequestIds).toEqual([changeId]);
  } finally {
    await db.end();
  }
});

test("a change whose implementation began stays with its release; an abandoned release lets go of the others", async () => {
  const changes = new PublishedStreams("chris");
  const [release, other] = [(await register()).releaseId, (await register()).releaseId];
  const [implementing, scheduled] = [randomUUID(), randomUUID()];
  await linkTo(release, implementing);
  await linkTo(release, scheduled);
  await publishEvents(producer, `${h.topicPrefix}${CHANGE_EVENTS_TOPIC}`, [
    changes.event("rdm/change", ChangeImplementationStartedSchema, implementing, {
      changeRequestId: implementing,
      linkedReleaseId: release,
      state: ChangeState.IMPLEMENTING,
    }),
    changes.event("rdm/change", ChangeRequestScheduledSchema, scheduled, {
      changeRequestId: scheduled,
      linkedReleaseId: release,
      state: ChangeState.SCHEDULED,
    }),
  ]);
  const unlink = (releaseId: string, changeRequestId: string) =>
    coordinator.unlinkChangeRequest({ ...req(), releaseId, changeRequestId });
  const db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  await waitFor(
    async () =>
      (
        await db.query("SELECT 1 FROM change_request_states WHERE change_request_id = ANY($1)", [
          [implementing, scheduled],
        ])
      ).rowCount === 2,
    { timeoutMs: 30_000, description: "the changes' states heard of" },
  ).finally(() => db.end());
  const refused = await failure(unlink(release, implementing));
  expect(refused.preconditionFailure?.violations.map((v) => v.type)).toEqual(["change.implementation_begun"]);
  expect([refused.code, refused.message]).toEqual([
    status.FAILED_PRECONDITION,
    expect.stringContaining("IMPLEMENTING"),
  ]);
  expect((await failure(linkTo(other, implementing))).preconditionFailure?.violations[0]?.type).toBe(
    "change.linked_elsewhere",
  );

  // Abandoned, the release may still let go of the scheduled change, and another takes it.
  await manager.abandonRelease({ ...req(), releaseId: release, reason: "superseded" });
  expect((await failure(linkTo(release, randomUUID()))).preconditionFailure?.violations[0]?.type).toBe(
    "release.active",
  );
  await unlink(release, scheduled);
  expect((await linkTo(other, scheduled)).release?.linkedChangeRequestIds).toEqual([scheduled]);
  expect((await get(release)).linkedChangeRequestIds).toEqual([implementing]);
});

const linkTo = (releaseId: string, changeRequestId: string) =>
  coordinator.linkChangeRequest({ ...req(), releaseId, changeRequestId });

test("a change request is linked by its id, a UUID: a key such as CHG-2026-0001 is INVALID_ARGUMENT", async () => {
  const releaseId = (await register()).releaseId;
  const refused = await failure(
    coordinator.linkChangeRequest({ ...req(), releaseId, changeRequestId: "CHG-2026-0001" }),
  );
  expect([refused.code, refused.badRequest?.fieldViolations.map((v) => [v.field, v.reason])]).toEqual([
    status.INVALID_ARGUMENT,
    [["change_request_id", "string.uuid"]],
  ]);
  expect((await get(releaseId)).linkedChangeRequestIds).toEqual([]);
});

test("ids in capitals name the same release and change: read, linked once, and the change's state counts at the gate", async () => {
  const releaseId = (await register()).releaseId;
  const changeId = randomUUID();
  expect((await manager.getRelease({ releaseId: releaseId.toUpperCase() })).release?.releaseId).toBe(releaseId);
  for (let i = 0; i < 3; i++) {
    await completeRequiredTasks(releaseId);
    await advance(releaseId.toUpperCase());
  }
  expect((await get(releaseId)).phase).toBe(ReleasePhase.APPROVAL);
  await coordinator.linkChangeRequest({
    ...req(),
    releaseId: releaseId.toUpperCase(),
    changeRequestId: changeId.toUpperCase(),
  });
  const again = await failure(coordinator.linkChangeRequest({ ...req(), releaseId, changeRequestId: changeId }));
  expect(again.code).toBe(status.ALREADY_EXISTS);
  expect((await get(releaseId)).linkedChangeRequestIds).toEqual([changeId]);

  // The change service publishes its ids in lowercase: the linked change is found by it.
  await publishChange(changeId, ChangeState.AUTHORIZED, 4);
  const linkedChange = async () =>
    (await manager.getReleaseGate({ releaseId: releaseId.toUpperCase() })).conditions.find(
      (c) => c.rule === "gate.linked_change_state" && c.subject === changeId,
    );
  await waitFor(async () => (await linkedChange())?.met, {
    timeoutMs: 30_000,
    description: "the change linked in capitals counted as authorized",
  });
  expect((await manager.getReleaseHistory({ releaseId: releaseId.toUpperCase() })).entries.length).toBeGreaterThan(1);
});

test("quorum and separation of duties", async () => {
  const releaseId = (await register({ coordinator: "carl", owner: "olivia" })).releaseId;
  for (let i = 0; i < 3; i++) {
    await completeRequiredTasks(releaseId);
    await advance(releaseId);
  }
  const { release } = await coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: "cab" });
  const approvalId = release?.approvals[0]?.approvalId as string;
  // Subjects are compared folded: "Olivia" and a full-width "ＣＡＲＬ" are the owner and the coordinator.
  for (const subject of ["olivia", "Olivia", " OLIVIA ", "carl", "ＣＡＲＬ", "rita"]) {
    const selfApproval = await h.client(subject, ["approver"], { groups: ["cab"] });
    const denied = await failure(selfApproval.approveRelease({ ...req(), releaseId, approvalId, comment: "" }));
    expect([denied.code, denied.errorInfo?.reason]).toEqual([
      status.PERMISSION_DENIED,
      "APPROVAL_SEPARATION_OF_DUTIES",
    ]);
  }
  const notApprover = await failure(manager.approveRelease({ ...req(), releaseId, approvalId, comment: "" }));
  expect(notApprover.code).toBe(status.PERMISSION_DENIED);

  await ann.approveRelease({ ...req(), releaseId, approvalId, comment: "" });
  expect((await get(releaseId)).approvals[0]?.status).toBe(ApprovalStatus.PENDING);
  const twice = await failure(ann.approveRelease({ ...req(), releaseId, approvalId, comment: "" }));
  expect(twice.preconditionFailure?.violations[0]?.type).toBe("approval.one_vote_per_approver");
  const annAgain = await h.client("Ann", ["approver"], { groups: ["cab"] });
  const twiceFolded = await failure(annAgain.approveRelease({ ...req(), releaseId, approvalId, comment: "" }));
  expect(twiceFolded.preconditionFailure?.violations[0]?.type).toBe("approval.one_vote_per_approver");
  await ben.approveRelease({ ...req(), releaseId, approvalId, comment: "" });
  expect((await get(releaseId)).approvals[0]?.status).toBe(ApprovalStatus.APPROVED);
});

/** A standard release in APPROVAL with a pending CAB approval request. */
async function pendingCabApproval() {
  const releaseId = (await register()).releaseId;
  for (let i = 0; i < 3; i++) {
    await completeRequiredTasks(releaseId);
    await advance(releaseId);
  }
  const { release } = await coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: "cab" });
  return { releaseId, approvalId: release?.approvals[0]?.approvalId as string };
}

test("the approver role is not enough: a vote needs the board in the token's groups, then counts toward quorum", async () => {
  const { releaseId, approvalId } = await pendingCabApproval();
  const outsiders = [
    await h.client("dora", ["approver"]), // no groups claim at all
    await h.client("dora", ["approver"], { groups: ["ecab", "cab-observers"] }),
  ];
  for (const outsider of outsiders) {
    for (const vote of [
      () => outsider.approveRelease({ ...req(), releaseId, approvalId, comment: "" }),
      () => outsider.rejectRelease({ ...req(), releaseId, approvalId, reason: "not on the board" }),
    ]) {
      const denied = await failure(vote());
      expect([denied.code, denied.errorInfo?.reason, denied.errorInfo?.metadata]).toEqual([
        status.PERMISSION_DENIED,
        "APPROVAL_GROUP_MEMBER",
        { rule: "approval.group_member", subject: "cab" },
      ]);
      expect(denied.message).toContain("cab");
    }
  }
  expect((await get(releaseId)).approvals[0]?.votes).toEqual([]);

  const dora = await h.client("dora", ["approver"], { groups: ["ecab", "cab"] });
  await dora.approveRelease({ ...req(), releaseId, approvalId, comment: "joined the board" });
  expect((await get(releaseId)).approvals[0]).toMatchObject({
    status: ApprovalStatus.PENDING,
    votes: [{ approver: "dora" }],
  });
  await ben.approveRelease({ ...req(), releaseId, approvalId, comment: "" });
  const approval = (await get(releaseId)).approvals[0];
  expect(approval?.status).toBe(ApprovalStatus.APPROVED);
  expect(approval?.votes.map((v) => v.approver)).toEqual(["dora", "ben"]);
  expect((await manager.getReleaseGate({ releaseId })).open).toBe(true);
});

test("racing approvals: each is re-decided on fresh state, so the quorum closes exactly once", async () => {
  const releaseId = (await register()).releaseId;
  for (let i = 0; i < 3; i++) {
    await completeRequiredTasks(releaseId);
    await advance(releaseId);
  }
  const { release } = await coordinator.requestReleaseApproval({ ...req(), releaseId, approverGroup: "cab" });
  const approvalId = release?.approvals[0]?.approvalId as string;
  const results = await Promise.allSettled(
    [ann, ben, cid, ann].map((c) => c.approveRelease({ ...req(), releaseId, approvalId, comment: "race" })),
  );
  const succeeded = results.filter((r) => r.status === "fulfilled");
  const refused = results
    .filter((r) => r.status === "rejected")
    .map((r) => errorDetails((r as PromiseRejectedResult).reason));
  // Quorum 2: two votes win; the rest see a decided approval or their own earlier vote.
  expect(succeeded).toHaveLength(2);
  expect(refused.map((e) => e.code)).toEqual([status.FAILED_PRECONDITION, status.FAILED_PRECONDITION]);
  const after = await get(releaseId);
  expect(after.approvals[0]?.votes).toHaveLength(2);
  expect(after.approvals[0]?.status).toBe(ApprovalStatus.APPROVED);
  const { entries } = await manager.getReleaseHistory({ releaseId });
  const granted = entries.filter((e) => e.eventType === "rdm.release.v1.ReleaseApprovalGranted");
  expect(granted).toHaveLength(2);
  expect(new Set(granted.map((e) => e.actor)).size).toBe(2);

  // Two advances racing: exactly one moves the release on.
  const advances = await Promise.allSettled([advance(releaseId), advance(releaseId)]);
  expect(advances.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  expect((await get(releaseId)).phase).toBe(ReleasePhase.BUILD_AND_TEST);
});

test("concurrent registrations get distinct human-readable keys REL-<year>-<seq>", async () => {
  const releases = await Promise.all(Array.from({ length: 12 }, (_, i) => register({ title: `Key race ${i}` })));
  const keys = releases.map((r) => r.key);
  const year = new Date().getUTCFullYear();
  for (const key of keys) expect(key).toMatch(new RegExp(`^REL-${year}-\\d{4,}$`));
  expect(new Set(keys).size).toBe(keys.length);
  // Each key finds its release.
  const viewer = await h.client("vera", ["viewer"]);
  for (const r of releases.slice(0, 3)) {
    const { releases: found } = await viewer.listReleases({ text: r.key });
    expect(found.map((f) => f.releaseId)).toEqual([r.releaseId]);
  }
});

test("a retried command (same request id) returns the first result and records nothing new", async () => {
  const releaseId = (await register()).releaseId;
  await completeRequiredTasks(releaseId);
  const request = { ...req(), releaseId };
  const [a, b] = await Promise.all([
    coordinator.advanceReleasePhase(request),
    coordinator.advanceReleasePhase(request),
  ]);
  const c = await coordinator.advanceReleasePhase(request);
  expect(b).toEqual(a);
  expect(c).toEqual(a);
  expect((await get(releaseId)).phase).toBe(ReleasePhase.ASSESSMENT);
  // After a later command the retry still answers the release as the first call left it: the
  // answer is recorded as the stream's version (no copy of the release) and rebuilt from it.
  await coordinator.recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.RISK, text: "later" });
  expect(await coordinator.advanceReleasePhase(request)).toEqual(a);
  const db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  const recorded = await db.query("SELECT response, stream_version FROM command_results WHERE request_id = $1", [
    request.requestId,
  ]);
  await db.end();
  expect(recorded.rows).toEqual([{ response: null, stream_version: String(a.release?.version) }]);
});

test("a new model version never changes releases already running on the old one", async () => {
  const before = await register({ title: "Runs on standard v1" });
  const v1 = (await manager.getReleaseModel({ name: "standard" })).model;
  if (!v1) throw new Error("the standard model is missing");
  const { model: created } = await manager.createReleaseModel({
    requestId: randomUUID(),
    model: {
      ...v1,
      description: "Slimmer standard",
      phases: v1.phases.filter((p) => p.phase !== ReleasePhase.ASSESSMENT && p.phase !== ReleasePhase.VERIFICATION),
    },
  });
  expect(created?.version).toBeGreaterThanOrEqual(2);
  const after = await register({ title: "Runs on the new standard" });
  expect(after.modelVersion).toBe(created?.version);
  expect(before.modelVersion).toBe(1);

  await completeRequiredTasks(before.releaseId);
  expect((await advance(before.releaseId)).phase).toBe(ReleasePhase.ASSESSMENT);
  await completeRequiredTasks(after.releaseId);
  expect((await advance(after.releaseId)).phase).toBe(ReleasePhase.PLANNING);
  expect((await get(before.releaseId)).modelVersion).toBe(1);

  const pinned = await register({ title: "Pinned to v1", modelName: "standard", modelVersion: 1 });
  expect(pinned.modelVersion).toBe(1);
  const invalid = await failure(
    manager.createReleaseModel({
      requestId: randomUUID(),
      model: { name: "broken", phases: [{ phase: ReleasePhase.PLANNING }, { phase: ReleasePhase.CLOSED }] },
    }),
  );
  expect([invalid.code, invalid.badRequest?.fieldViolations[0]?.reason]).toEqual([
    status.INVALID_ARGUMENT,
    "model.first_phase",
  ]);
  // Change states as a generated client spells them (the enum's full name) are stored short, so
  // the gate compares them with the states the change topic reports; anything else is refused.
  const minimal = (name: string, linkedChangeStates: string[]) => ({
    requestId: randomUUID(),
    model: {
      name,
      phases: [{ phase: ReleasePhase.REGISTRATION, linkedChangeStates }, { phase: ReleasePhase.CLOSED }],
    },
  });
  const spelled = await manager.createReleaseModel(
    minimal(uniqueId("enum-names"), ["CHANGE_STATE_AUTHORIZED", "CLOSED"]),
  );
  expect(spelled.model?.phases[0]?.linkedChangeStates).toEqual(["AUTHORIZED", "CLOSED"]);
  const misspelled = await failure(manager.createReleaseModel(minimal(uniqueId("typo"), ["AUTHORIZED", "APPROVED"])));
  expect([misspelled.code, misspelled.badRequest?.fieldViolations.map((v) => [v.field, v.reason])]).toEqual([
    status.INVALID_ARGUMENT,
    [["model.phases[0].linked_change_states[1]", "model.linked_change_state"]],
  ]);
  // 200 years: the due time would be past year 9999, which no consumer can store.
  const tooLong = await failure(
    manager.createReleaseModel({
      requestId: randomUUID(),
      model: {
        name: "centuries",
        phases: [
          { phase: ReleasePhase.REGISTRATION, deadline: { seconds: 6_311_520_000n } },
          { phase: ReleasePhase.CLOSED },
        ],
      },
    }),
  );
  expect([tooLong.code, tooLong.badRequest?.fieldViolations.map((v) => [v.field, v.reason])]).toEqual([
    status.INVALID_ARGUMENT,
    [["model.phases[0].deadline", "duration.gte_lte"]],
  ]);
  const models = (await manager.listReleaseModels({})).models.map((m) => m.name);
  expect(models).toEqual(expect.arrayContaining(["standard", "emergency"]));
});

test("a release holds at most 1 MiB: the command that would pass it is refused, and the release stays readable", async () => {
  const owner = uniqueId("big-owner");
  const { releaseId } = await register({ owner, modelVersion: 1 });
  const text = "\u{1F600}".repeat(5000); // the longest entry, 20,000 bytes
  let refusal: ReturnType<typeof errorDetails> | undefined;
  let recorded = 0;
  while (!refusal && recorded < 100) {
    await coordinator.recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.ISSUE, text }).then(
      () => recorded++,
      (error: unknown) => {
        refusal = errorDetails(error);
      },
    );
  }
  expect([refusal?.code, refusal?.preconditionFailure?.violations.map((v) => v.type)]).toEqual([
    status.FAILED_PRECONDITION,
    ["release.size_limit"],
  ]);
  expect(recorded).toBeGreaterThan(40);
  expect((await get(releaseId)).log).toHaveLength(recorded);
  // A page holds at most 3 MiB of releases: with three more of 40 entries (about 0.8 MiB each),
  // the first page stops after three and the next has the fourth.
  const more = [];
  for (let i = 0; i < 3; i++) more.push((await register({ owner, modelVersion: 1 })).releaseId);
  await Promise.all(
    more.map(async (id) => {
      for (let i = 0; i < 40; i++) {
        await coordinator.recordReleaseLogEntry({ ...req(), releaseId: id, kind: LogEntryKind.ISSUE, text });
      }
    }),
  );
  const first = await manager.listReleases({ owner });
  const rest = await manager.listReleases({ owner, pageToken: first.nextPageToken });
  expect([first.releases.length, rest.releases.length, rest.nextPageToken]).toEqual([3, 1, ""]);
  const listed = [...first.releases, ...rest.releases].map((r) => r.releaseId);
  expect(listed.sort()).toEqual([releaseId, ...more].sort());
});

test("a ListReleases page token pages on with the filters that made it, at any page size, and with no others", async () => {
  const owner = uniqueId("owner");
  for (let i = 0; i < 4; i++) await register({ owner, title: `Paged ${i}`, modelVersion: 1 });
  const all = (await manager.listReleases({ owner })).releases.map((r) => r.releaseId);
  const first = await manager.listReleases({ owner, pageSize: 1 });
  const rest = await manager.listReleases({ owner, pageSize: 10, pageToken: first.nextPageToken });
  expect(rest.nextPageToken).toBe("");
  expect([...first.releases, ...rest.releases].map((r) => r.releaseId)).toEqual(all);
  expect(all).toHaveLength(4);

  for (const filters of [{}, { owner: uniqueId("owner") }, { owner, text: "Paged" }, { owner, overdueOnly: true }]) {
    const refused = await failure(manager.listReleases({ ...filters, pageToken: first.nextPageToken }));
    expect([filters, refused.code, refused.badRequest?.fieldViolations[0]]).toEqual([
      filters,
      status.INVALID_ARGUMENT,
      expect.objectContaining({
        field: "page_token",
        description: "page_token does not belong to this list and filters",
      }),
    ]);
  }
});

test("ListReleases filters by phase, type, owner, status and pages without duplicates", async () => {
  const owner = uniqueId("owner");
  const ids: string[] = [];
  // Pinned to standard v1: another test creates newer versions.
  for (let i = 0; i < 5; i++) ids.push((await register({ owner, title: `List ${i}`, modelVersion: 1 })).releaseId);
  const emergency = (await register({ owner, type: ReleaseType.EMERGENCY, title: "List emergency" })).releaseId;
  await completeRequiredTasks(ids[0] as string);
  await advance(ids[0] as string);
  await manager.abandonRelease({ ...req(), releaseId: ids[1] as string, reason: "duplicate of another" });

  const seen: string[] = [];
  let pageToken = "";
  do {
    const page = await manager.listReleases({ owner, pageSize: 2, pageToken });
    expect(page.releases.length).toBeLessThanOrEqual(2);
    seen.push(...page.releases.map((r) => r.releaseId));
    pageToken = page.nextPageToken;
  } while (pageToken);
  expect(seen.sort()).toEqual([...ids, emergency].sort());

  const ids_ = async (filter: Record<string, unknown>) =>
    (await manager.listReleases({ owner, ...filter })).releases.map((r) => r.releaseId);
  expect(await ids_({ phase: ReleasePhase.ASSESSMENT })).toEqual([ids[0]]);
  expect(await ids_({ type: ReleaseType.EMERGENCY })).toEqual([emergency]);
  expect(await ids_({ status: ReleaseStatus.ABANDONED })).toEqual([ids[1]]);
  expect(await ids_({ text: "emergency" })).toEqual([emergency]);
  expect(await ids_({ overdueOnly: true })).toEqual([]);
  const bad = await failure(manager.listReleases({ pageToken: "garbage" }));
  expect(bad.code).toBe(status.INVALID_ARGUMENT);
  // Well-formed but forged: values PostgreSQL would refuse are refused before the query.
  const scope = pageTokenScope("release.ListReleases", create(ListReleasesRequestSchema));
  const forged = ([sortKey, id]: [string, string]) => encodePageToken(scope, sortKey, id);
  for (const token of [forged(["2026-01-01T00:00:00.000Z", "not-a-uuid"]), forged(["1", randomUUID()])]) {
    expect((await failure(manager.listReleases({ pageToken: token }))).code).toBe(status.INVALID_ARGUMENT);
  }

  const db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  const { rows } = await db.query("SELECT count(*)::int AS n FROM release_index WHERE owner = $1", [owner]);
  await db.end();
  expect(rows[0].n).toBe(6);
});

test("UpdateReleasePlanning replaces the planning fields, GetRelease shows them and the history names the planner", async () => {
  const registered = await register();
  const releaseId = registered.releaseId;
  const start = new Date("2026-06-05T20:00:00Z");
  const end = new Date("2026-06-05T23:30:00Z");
  const request = {
    ...req(),
    releaseId,
    title: "Payments 4.3",
    description: "Moved to June, with the ledger fix",
    category: "payments-core",
    coordinator: "cora",
    stakeholders: ["sre-payments", "finance"],
    risk: RiskLevel.HIGH,
    plannedWindow: { start: timestampFromDate(start), end: timestampFromDate(end) },
  };
  const { release: answered } = await coordinator.updateReleasePlanning(request);
  const fetched = await get(releaseId);
  const planning = {
    title: "Payments 4.3",
    description: "Moved to June, with the ledger fix",
    category: "payments-core",
    coordinator: "cora",
    stakeholders: ["sre-payments", "finance"],
    risk: RiskLevel.HIGH,
  };
  expect(answered).toMatchObject(planning);
  expect(fetched).toMatchObject(planning);
  expect([fetched.plannedWindow?.start, fetched.plannedWindow?.end].map((t) => t && timestampDate(t))).toEqual([
    start,
    end,
  ]);
  // What planning does not cover stays as registered.
  expect(fetched).toMatchObject({ key: registered.key, owner: registered.owner, phase: ReleasePhase.REGISTRATION });

  const { entries } = await manager.getReleaseHistory({ releaseId });
  expect(entries.at(-1)).toMatchObject({
    eventType: "rdm.release.v1.ReleasePlanningUpdated",
    actor: "carl",
    requestId: request.requestId,
    version: fetched.version,
  });

  // Every field is replaced: a window left out is no window any more.
  await coordinator.updateReleasePlanning({ ...request, requestId: randomUUID(), plannedWindow: undefined });
  expect((await get(releaseId)).plannedWindow).toBeUndefined();
});

/** RPCs with a request each; the role check happens before the request reaches the handler. */
const roleCases: [keyof typeof releaseServiceRoles, (client: ReleaseClient, releaseId: string) => Promise<unknown>][] =
  [
    ["registerRelease", (c) => c.registerRelease(registration())],
    ["updateReleasePlanning", (c, releaseId) => c.updateReleasePlanning({ ...req(), releaseId, title: "Renamed" })],
    ["advanceReleasePhase", (c, releaseId) => c.advanceReleasePhase({ ...req(), releaseId })],
    ["abandonRelease", (c, releaseId) => c.abandonRelease({ ...req(), releaseId, reason: "no longer needed" })],
    [
      "approveRelease",
      (c, releaseId) => c.approveRelease({ ...req(), releaseId, approvalId: randomUUID(), comment: "" }),
    ],
    [
      "rejectRelease",
      (c, releaseId) => c.rejectRelease({ ...req(), releaseId, approvalId: randomUUID(), reason: "too risky" }),
    ],
    [
      "attachReleaseArtifact",
      (c, releaseId) =>
        c.attachReleaseArtifact({
          ...req(),
          releaseId,
          artifactId: randomUUID(),
          name: "payments-api",
          version: "4.3.0",
          sha256: "d".repeat(64),
        }),
    ],
    [
      "createReleaseModel",
      (c) =>
        c.createReleaseModel({
          requestId: randomUUID(),
          model: { name: "minimal", phases: [{ phase: ReleasePhase.REGISTRATION }, { phase: ReleasePhase.CLOSED }] },
        }),
    ],
  ];

test.each(roleCases)("%s refuses every role its roles entry does not list", async (rpc, call) => {
  const release = await register();
  const refused = ROLES.filter((role: Role) => role !== "admin" && !releaseServiceRoles[rpc].includes(role));
  expect(refused.length).toBeGreaterThan(0);
  for (const role of refused) {
    const denied = await failure(call(await h.client(`someone-${role}`, [role]), release.releaseId));
    expect([role, denied.code, denied.errorInfo?.reason]).toEqual([role, status.PERMISSION_DENIED, "MISSING_ROLE"]);
  }
  expect((await get(release.releaseId)).version).toBe(release.version);
});

// Reads every row the tests above wrote.
test("the query tables rebuilt from the event streams equal the live ones, also while commands run", async () => {
  const pool = new pg.Pool({ connectionString: h.databaseUrl, max: 2 });
  try {
    const live = await queryTableRows(pool);
    expect(live.release_index?.length).toBeGreaterThan(20);
    const counts = await rebuildQueryTables(pool, new EventStore(pool), releaseQueryTables);
    expect(counts).toEqual({
      release: live.release_index?.length,
      subscription: live.notification_subscriptions?.length,
    });
    expect(await queryTableRows(pool)).toEqual(live);

    // The operator's command, while releases are registered and logged until it ends: each
    // command's rows are written before the rebuild locks the tables (and rebuilt from its
    // events) or after it, from the release's whole state.
    const logged = await register();
    const cli = runBuiltCommand(new URL("../dist/rebuild-main.js", import.meta.url), h.databaseUrl);
    const registered: string[] = [];
    let entries = 0;
    const { stdout } = await repeatWhilePending(cli, async () => {
      const [a, b] = await Promise.all([
        register(),
        register(),
        ...["one", "two"].map((text) =>
          coordinator.recordReleaseLogEntry({ ...req(), releaseId: logged.releaseId, kind: LogEntryKind.ISSUE, text }),
        ),
      ]);
      registered.push(a.releaseId, b.releaseId);
      entries += 2;
    });
    expect(stdout).toMatch(
      /^release rebuild-tables: rebuilt release_index, notification_subscriptions from \d+ release, \d+ subscription streams\n$/,
    );
    const after = await queryTableRows(pool);
    const indexed = (after.release_index ?? []) as { release_id: string; snapshot: string }[];
    expect(indexed.map((r) => r.release_id)).toEqual(expect.arrayContaining(registered));
    const loggedRow = indexed.find((r) => r.release_id === logged.releaseId);
    expect(loggedRow && fromBinary(ReleaseSchema, Buffer.from(loggedRow.snapshot, "hex")).log).toHaveLength(entries);
    await rebuildQueryTables(pool, new EventStore(pool), releaseQueryTables);
    expect(await queryTableRows(pool)).toEqual(after);
  } finally {
    await pool.end();
  }
});
