// The change service through its public interfaces: gRPC on a random port against a fresh
// PostgreSQL database, and the real Kafka protocol for the release and deployment events it reacts to.
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { mintDevToken, type Role } from "@rdm/auth";
import { rebuildQueryTables } from "@rdm/command-handler";
import { EventStore } from "@rdm/eventstore";
import { createGrpcClient, errorDetails } from "@rdm/grpc";
import {
  type CloudEvent,
  createKafka,
  createProducer,
  DEPLOYMENT_EVENTS_TOPIC,
  publishEvents,
  RELEASE_EVENTS_TOPIC,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import {
  ApprovalDecision,
  ChangeBoard,
  ChangeImpact,
  type ChangeRequest,
  ChangeRequestSchema,
  ChangeReviewOutcome,
  ChangeRisk,
  ChangeState,
  ChangeTaskState,
  ChangeType,
  ChangeUrgency,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { ChangeRequestReleaseUnlinkedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleaseChangeRequestLinkedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { encodePageToken, pageTokenScope } from "@rdm/runtime";
import {
  createTestDatabase,
  PublishedStreams,
  repeatWhilePending,
  runBuiltCommand,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
  waitFor,
} from "@rdm/testkit";
import type { Producer } from "kafkajs";
import pg from "pg";
import { startChangeService } from "../src/service.js";
import { changeQueryTables } from "../src/store/query-tables.js";

/** The operator's `pnpm --filter @rdm/change rebuild-tables` (as built) on `url`. */
const rebuildTablesCommand = (url: string) => runBuiltCommand(new URL("../dist/rebuild-main.js", import.meta.url), url);
const secret = randomUUID() + randomUUID();
let address: string;
let databaseUrl: string;
let producer: Producer;
// Topics of this file's own: the service reads only the release and deployment events published here.
const topicPrefix = testTopicPrefix("change-it");
const stopAll: (() => Promise<void>)[] = [];

/** `groups` is the token's groups claim: "cab" seats a caller on the CAB, ECAB_GROUP on the ECAB. */
const clientAs = async (subject: string, roles: Role[], groups: string[] = []) =>
  createGrpcClient(ChangeService, address, {
    token: await mintDevToken({ subject, roles, groups, secret, issuer: "rdm", audience: "rdm", expiresIn: "10m" }),
  });
// The CAB keeps its default group; the ECAB's is configured, so both paths are exercised.
const ECAB_GROUP = "ecab-on-call";

beforeAll(async () => {
  const brokers = await testKafkaBrokers();
  const db = await createTestDatabase("change_it");
  databaseUrl = db.url;
  const service = await startChangeService({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: brokers.join(","),
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    CHANGE_CONSUMER_GROUP: uniqueId("change-it"),
    CHANGE_CONSUMER_SESSION_TIMEOUT_MS: "6000",
    CHANGE_ECAB_GROUP: ECAB_GROUP,
  });
  stopAll.push(() => service.stop());
  address = `127.0.0.1:${service.port}`;
  const kafka = createKafka({
    brokers,
    clientId: uniqueId("change-it-producer"),
    logger: createLogger("test", "warn"),
  });
  producer = createProducer(kafka);
  await producer.connect();
  stopAll.push(() => producer.disconnect());
});

afterAll(async () => {
  for (const stop of stopAll.reverse()) await stop();
});

// Every test books its own days and its own CIs (the database is this file's), so tests never collide.
let dayOffset = 0;
function slot(hours = 2) {
  dayOffset += 3;
  const start = new Date(Date.UTC(2031, 0, 1 + dayOffset, 20));
  const at = (h: number) => new Date(start.getTime() + h * 3_600_000);
  const window = (from: number, to: number) =>
    create(TimeWindowSchema, { start: timestampFromDate(at(from)), end: timestampFromDate(at(to)) });
  return { window: window(0, hours), shifted: window, day: window(-20, 28) };
}

const rfc = (overrides: Record<string, unknown> = {}) => ({
  requestId: randomUUID(),
  type: ChangeType.NORMAL,
  title: "Upgrade payments database",
  justification: "end of support",
  affectedCiIds: [uniqueId("ci-db")],
  environments: ["production"],
  implementationPlan: "pg_upgrade --link",
  testPlan: "smoke tests",
  backoutPlan: "restore the pre-upgrade snapshot",
  impact: ChangeImpact.MEDIUM,
  urgency: ChangeUrgency.MEDIUM,
  ...overrides,
});

const rid = () => ({ requestId: randomUUID() });

async function precondition(call: Promise<unknown>) {
  const error = await call.then(
    () => {
      throw new Error("expected FAILED_PRECONDITION");
    },
    (e: unknown) => e,
  );
  const details = errorDetails(error);
  expect(details.code).toBe(status.FAILED_PRECONDITION);
  return { message: details.message, violations: details.preconditionFailure?.violations ?? [] };
}

/** A PERMISSION_DENIED refusal: its message and ErrorInfo (reason, rule and subject). */
async function denied(call: Promise<unknown>) {
  const error = await call.then(
    () => {
      throw new Error("expected PERMISSION_DENIED");
    },
    (e: unknown) => e,
  );
  const details = errorDetails(error);
  expect(details.code).toBe(status.PERMISSION_DENIED);
  return { message: details.message, reason: details.errorInfo?.reason, metadata: details.errorInfo?.metadata ?? {} };
}

/** Raises, submits, assesses (quorum 1) and authorizes a change; returns its id. */
async function authorizedChange(overrides: Record<string, unknown> = {}) {
  const requester = await clientAs("rita", ["change-manager"]);
  const approver = await clientAs("anna", ["approver"], ["cab"]);
  const { change } = await requester.raiseChange(rfc(overrides));
  const id = change?.changeRequestId as string;
  await requester.submitChange({ ...rid(), changeRequestId: id });
  await requester.assessChange({
    ...rid(),
    changeRequestId: id,
    impact: ChangeImpact.LOW,
    urgency: ChangeUrgency.LOW,
    requiredApprovals: 1,
  });
  const approved = await approver.approveChange({ ...rid(), changeRequestId: id, comment: "ok" });
  expect(approved.change?.state).toBe(ChangeState.AUTHORIZED);
  return id;
}

/** An authorized change scheduled by a change manager in a slot of its own; its id. */
async function scheduledChange(overrides: Record<string, unknown> = {}) {
  const id = await authorizedChange(overrides);
  const manager = await clientAs("carl", ["change-manager"]);
  await manager.scheduleChange({ ...rid(), changeRequestId: id, window: slot().window });
  return id;
}

test("a draft is edited (risk recomputed, queries see the new CIs); a submitted change no longer is", async () => {
  const requester = await clientAs("rita", ["change-manager"]);
  const { window } = slot();
  const { change } = await requester.raiseChange(rfc());
  const id = change?.changeRequestId as string;
  const ci = uniqueId("ci-edited");
  const edit = {
    changeRequestId: id,
    title: "Upgrade payments database to 18",
    description: "major version",
    justification: "end of support in March",
    affectedCiIds: [ci],
    environments: ["production", "staging"],
    implementationPlan: "pg_upgrade --link",
    testPlan: "replay a day of traffic",
    backoutPlan: "restore the snapshot",
    impact: ChangeImpact.HIGH,
    urgency: ChangeUrgency.MEDIUM,
    plannedWindow: window,
  };
  const updated = await requester.updateChange({ ...rid(), ...edit });
  expect(updated.change).toMatchObject({
    state: ChangeState.DRAFT,
    title: "Upgrade payments database to 18",
    affectedCiIds: [ci],
    environments: ["production", "staging"],
    risk: ChangeRisk.HIGH,
    plannedWindow: window,
  });
  const viewer = await clientAs("vera", ["viewer"]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toEqual(updated.change);
  expect((await viewer.listChanges({ ciId: ci })).changes.map((c) => c.changeRequestId)).toEqual([id]);

  await requester.submitChange({ ...rid(), changeRequestId: id });
  const refused = await precondition(requester.updateChange({ ...rid(), ...edit, title: "too late" }));
  expect(refused.violations.map((v) => v.type)).toEqual(["change.update.state"]);
});

test("a normal change goes through the CAB to CLOSED", async () => {
  const requester = await clientAs("rita", ["change-manager"]);
  const anna = await clientAs("anna", ["approver"], ["cab"]);
  const ben = await clientAs("ben", ["approver"], ["cab"]);
  const implementer = await clientAs("dora", ["deployer"]);
  const { window } = slot();
  const releaseId = randomUUID();

  const raised = await requester.raiseChange(rfc({ linkedReleaseId: releaseId }));
  const id = raised.change?.changeRequestId as string;
  expect(raised.change).toMatchObject({
    state: ChangeState.DRAFT,
    requester: "rita",
    risk: ChangeRisk.MEDIUM,
    linkedReleaseId: releaseId,
    board: ChangeBoard.CAB,
  });
  expect(raised.change?.key).toMatch(/^CHG-\d{4}-\d{4,}$/);

  await requester.submitChange({ ...rid(), changeRequestId: id });
  const assessed = await requester.assessChange({
    ...rid(),
    changeRequestId: id,
    impact: ChangeImpact.HIGH,
    urgency: ChangeUrgency.MEDIUM,
    requiredApprovals: 2,
    notes: "database outage risk",
  });
  expect(assessed.change).toMatchObject({ state: ChangeState.ASSESSED, risk: ChangeRisk.HIGH, requiredApprovals: 2 });

  const first = await anna.approveChange({ ...rid(), changeRequestId: id, comment: "fine" });
  expect(first.change?.state).toBe(ChangeState.ASSESSED);
  const second = await ben.approveChange({ ...rid(), changeRequestId: id, comment: "go" });
  expect(second.change?.state).toBe(ChangeState.AUTHORIZED);
  expect(second.change?.approvals.map((a) => [a.approver, a.decision])).toEqual([
    ["anna", ApprovalDecision.APPROVED],
    ["ben", ApprovalDecision.APPROVED],
  ]);

  const scheduled = await requester.scheduleChange({ ...rid(), changeRequestId: id, window });
  expect(scheduled.change?.state).toBe(ChangeState.SCHEDULED);
  expect(scheduled.collisions).toEqual([]);

  const { taskId } = await requester.addChangeTask({
    ...rid(),
    changeRequestId: id,
    title: "drain traffic",
    assignee: "dora",
  });
  await implementer.startChangeImplementation({ ...rid(), changeRequestId: id });
  const early = await precondition(implementer.completeChangeImplementation({ ...rid(), changeRequestId: id }));
  expect(early.violations.map((v) => [v.type, v.subject])).toEqual([
    ["change.complete_implementation.tasks_done", taskId],
  ]);
  await implementer.completeChangeTask({ ...rid(), changeRequestId: id, taskId });
  await implementer.completeChangeImplementation({ ...rid(), changeRequestId: id });
  await requester.reviewChange({
    ...rid(),
    changeRequestId: id,
    outcome: ChangeReviewOutcome.SUCCESSFUL,
    notes: "smooth",
  });
  const closed = await requester.closeChange({ ...rid(), changeRequestId: id });
  expect(closed.change).toMatchObject({
    state: ChangeState.CLOSED,
    reviewOutcome: ChangeReviewOutcome.SUCCESSFUL,
    tasks: [{ taskId, state: ChangeTaskState.DONE, completedBy: "dora" }],
  });

  const viewer = await clientAs("vera", ["viewer"]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toEqual(closed.change);
  const listed = await viewer.listChanges({ states: [ChangeState.CLOSED], linkedReleaseId: releaseId });
  expect(listed.changes.map((c) => c.changeRequestId)).toEqual([id]);

  // Every step is an event in the change's stream, in order, each with its actor.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const { rows } = await db.query(
    "SELECT type, metadata->>'actor' AS actor FROM events WHERE stream_id = $1 ORDER BY version",
    [id],
  );
  await db.end();
  expect(rows.map((r) => [r.type.replace("rdm.change.v1.", ""), r.actor])).toEqual([
    ["ChangeRequestRaised", "rita"],
    ["ChangeRequestSubmitted", "rita"],
    ["ChangeRequestAssessed", "rita"],
    ["ChangeApprovalRecorded", "anna"],
    ["ChangeApprovalRecorded", "ben"],
    ["ChangeRequestAuthorized", "ben"],
    ["ChangeRequestScheduled", "rita"],
    ["ChangeTaskAdded", "rita"],
    ["ChangeImplementationStarted", "dora"],
    ["ChangeTaskCompleted", "dora"],
    ["ChangeRequestImplemented", "dora"],
    ["ChangeRequestReviewed", "rita"],
    ["ChangeRequestClosed", "rita"],
  ]);
});

test("a standard change from a catalog template skips the CAB", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const { template } = await manager.registerStandardChangeTemplate({
    ...rid(),
    name: uniqueId("Rotate TLS certificate"),
    implementationPlan: "cert-manager renew",
    testPlan: "openssl s_client",
    backoutPlan: "restore the previous secret",
    risk: ChangeRisk.LOW,
  });
  const templateId = template?.templateId as string;
  const listed = await manager.listStandardChangeTemplates({});
  expect(listed.templates.map((t) => t.templateId)).toContain(templateId);

  const { change } = await manager.raiseChange(
    rfc({ type: ChangeType.STANDARD, templateId, justification: "", implementationPlan: "", backoutPlan: "" }),
  );
  expect(change).toMatchObject({ backoutPlan: "restore the previous secret", risk: ChangeRisk.LOW });
  const submitted = await manager.submitChange({ ...rid(), changeRequestId: change?.changeRequestId as string });
  expect(submitted.change).toMatchObject({
    state: ChangeState.AUTHORIZED,
    board: ChangeBoard.PRE_AUTHORIZED,
    requiredApprovals: 0,
    approvals: [],
    templateId,
  });
  const scheduled = await manager.scheduleChange({
    ...rid(),
    changeRequestId: change?.changeRequestId as string,
    window: slot().window,
  });
  expect(scheduled.change?.state).toBe(ChangeState.SCHEDULED);

  // A retired template instantiates no more changes, and no longer pre-authorizes a draft raised
  // from it before: that one stays a DRAFT.
  const { change: draft } = await manager.raiseChange(rfc({ type: ChangeType.STANDARD, templateId }));
  await manager.retireStandardChangeTemplate({ ...rid(), templateId, reason: "replaced" });
  const refused = await precondition(manager.raiseChange(rfc({ type: ChangeType.STANDARD, templateId })));
  expect(refused.violations[0]?.type).toBe("standard_change.template_active");
  const draftId = draft?.changeRequestId as string;
  const notSubmitted = await precondition(manager.submitChange({ ...rid(), changeRequestId: draftId }));
  expect(notSubmitted.violations[0]?.type).toBe("standard_change.template_active");
  expect((await manager.getChange({ changeRequestId: draftId })).change?.state).toBe(ChangeState.DRAFT);
});

test("a normal change is refused inside a freeze; it schedules once the freeze is lifted", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const environment = uniqueId("prod-eu");
  const { window, day } = slot();
  const { freezeWindow } = await manager.declareFreezeWindow({
    ...rid(),
    name: "Black Friday",
    reason: "peak trading",
    window: day,
    scope: { environments: [environment] },
  });
  const id = await authorizedChange({ environments: [environment] });
  const refused = await precondition(manager.scheduleChange({ ...rid(), changeRequestId: id, window }));
  expect(refused.violations).toEqual([
    expect.objectContaining({ type: "change.schedule.freeze", subject: freezeWindow?.freezeWindowId }),
  ]);
  expect(refused.message).toContain("Black Friday");

  const viewer = await clientAs("vera", ["viewer"]);
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.AUTHORIZED);
  await manager.liftFreezeWindow({
    ...rid(),
    freezeWindowId: freezeWindow?.freezeWindowId as string,
    reason: "sale over",
  });
  const scheduled = await manager.scheduleChange({ ...rid(), changeRequestId: id, window });
  expect(scheduled.change?.state).toBe(ChangeState.SCHEDULED);
});

test("an emergency change overrides a freeze with a recorded justification (ECAB)", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const ci = uniqueId("ci-payments-api");
  const { window, day } = slot();
  const { freezeWindow } = await manager.declareFreezeWindow({
    ...rid(),
    name: "Year-end freeze",
    window: day,
    scope: { ciIds: [ci] },
  });

  const raised = await manager.raiseChange(rfc({ type: ChangeType.EMERGENCY, affectedCiIds: [ci] }));
  const id = raised.change?.changeRequestId as string;
  await manager.submitChange({ ...rid(), changeRequestId: id });
  const assessed = await manager.assessChange({
    ...rid(),
    changeRequestId: id,
    impact: ChangeImpact.HIGH,
    urgency: ChangeUrgency.HIGH,
  });
  expect(assessed.change).toMatchObject({ board: ChangeBoard.ECAB, requiredApprovals: 1, risk: ChangeRisk.CRITICAL });
  await (await clientAs("erin", ["approver"], [ECAB_GROUP])).approveChange({ ...rid(), changeRequestId: id });

  const unjustified = await precondition(manager.scheduleChange({ ...rid(), changeRequestId: id, window }));
  expect(unjustified.violations[0]?.type).toBe("change.schedule.freeze");
  expect(unjustified.message).toContain("freeze_override_justification");

  const scheduled = await manager.scheduleChange({
    ...rid(),
    changeRequestId: id,
    window,
    freezeOverrideJustification: "P1 incident INC-4711: payments down",
  });
  expect(scheduled.change).toMatchObject({
    state: ChangeState.SCHEDULED,
    overriddenFreezeIds: [freezeWindow?.freezeWindowId],
    freezeOverrideJustification: "P1 incident INC-4711: payments down",
  });
  expect(scheduled.overriddenFreezes.map((f) => f.name)).toEqual(["Year-end freeze"]);

  // The calendar for the day shows the freeze and the change inside it.
  const calendar = await (await clientAs("vera", ["viewer"])).getChangeCalendar({ window: day });
  expect(calendar.freezeWindows.map((f) => f.freezeWindowId)).toContain(freezeWindow?.freezeWindowId);
  expect(calendar.changes.map((c) => c.changeRequestId)).toContain(id);
});

test("collisions on the same CIs are reported; strict mode refuses them", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const shared = uniqueId("ci-shared");
  const { window, shifted } = slot();
  const first = await authorizedChange({ affectedCiIds: [shared, uniqueId("ci-a")] });
  const firstScheduled = await manager.scheduleChange({ ...rid(), changeRequestId: first, window });
  expect(firstScheduled.collisions).toEqual([]);

  const second = await authorizedChange({ affectedCiIds: [shared, uniqueId("ci-b")] });
  const strict = await precondition(
    manager.scheduleChange({ ...rid(), changeRequestId: second, window: shifted(1, 3), strict: true }),
  );
  expect(strict.violations).toEqual([expect.objectContaining({ type: "change.schedule.collision", subject: first })]);

  const lenient = await manager.scheduleChange({ ...rid(), changeRequestId: second, window: shifted(1, 3) });
  expect(lenient.change?.state).toBe(ChangeState.SCHEDULED);
  expect(lenient.collisions).toEqual([
    expect.objectContaining({
      changeRequestId: first,
      key: firstScheduled.change?.key,
      ciIds: [shared],
      state: ChangeState.SCHEDULED,
    }),
  ]);
  expect(lenient.change?.collisions).toEqual(lenient.collisions);

  // Back to back is no collision.
  const third = await authorizedChange({ affectedCiIds: [shared] });
  const adjacent = await manager.scheduleChange({
    ...rid(),
    changeRequestId: third,
    window: shifted(3, 4),
    strict: true,
  });
  expect(adjacent.collisions).toEqual([]);

  const viewer = await clientAs("vera", ["viewer"]);
  const byCi = await viewer.listChanges({ ciId: shared, window: shifted(0, 1) });
  expect(byCi.changes.map((c) => c.changeRequestId)).toEqual([first]);
  // A bound left out is open: a start alone, windows ending after it; an end alone, those before.
  const fromHour3 = await viewer.listChanges({ ciId: shared, window: { start: shifted(3, 4).start } });
  expect(fromHour3.changes.map((c) => c.changeRequestId)).toEqual([third]);
  const untilHour1 = await viewer.listChanges({ ciId: shared, window: { end: shifted(0, 1).end } });
  expect(untilHour1.changes.map((c) => c.changeRequestId)).toEqual([first]);
});

test("separation of duties: the requester cannot approve their own change (PERMISSION_DENIED)", async () => {
  // Rita holds both roles and sits on the CAB; the rule, not the role or board check, refuses her.
  const rita = await clientAs("rita", ["change-manager", "approver"], ["cab"]);
  const { change } = await rita.raiseChange(rfc());
  const id = change?.changeRequestId as string;
  await rita.submitChange({ ...rid(), changeRequestId: id });
  await rita.assessChange({ ...rid(), changeRequestId: id, impact: ChangeImpact.LOW, urgency: ChangeUrgency.LOW });
  // Each call made when awaited: a refusal arriving before its handler is attached is an unhandled rejection.
  for (const vote of [
    () => rita.approveChange({ ...rid(), changeRequestId: id }),
    () => rita.rejectChange({ ...rid(), changeRequestId: id, reason: "mine" }),
  ]) {
    const refused = await denied(vote());
    expect(refused.reason).toBe("CHANGE_APPROVAL_SEPARATION_OF_DUTIES");
    expect(refused.metadata).toMatchObject({ rule: "change.approval.separation_of_duties" });
  }
  // Subjects are compared folded: "RITA" is the requester too.
  const ritaUpper = await clientAs("RITA", ["approver"], ["cab"]);
  expect((await denied(ritaUpper.approveChange({ ...rid(), changeRequestId: id }))).reason).toBe(
    "CHANGE_APPROVAL_SEPARATION_OF_DUTIES",
  );

  const viewer = await clientAs("vera", ["viewer"], ["cab"]);
  expect((await denied(viewer.approveChange({ ...rid(), changeRequestId: id }))).reason).toBe("MISSING_ROLE");
  const anna = await clientAs("anna", ["approver"], ["cab"]);
  const approved = await anna.approveChange({ ...rid(), changeRequestId: id });
  expect(approved.change?.state).toBe(ChangeState.AUTHORIZED);
});

test("only members of the change's board vote: the CAB's group for normal changes, the ECAB's for emergencies", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const assessedChange = async (type: ChangeType) => {
    const { change } = await manager.raiseChange(rfc({ type }));
    const id = change?.changeRequestId as string;
    await manager.submitChange({ ...rid(), changeRequestId: id });
    await manager.assessChange({
      ...rid(),
      changeRequestId: id,
      impact: ChangeImpact.LOW,
      urgency: ChangeUrgency.LOW,
      requiredApprovals: 1,
    });
    return id;
  };
  const normal = await assessedChange(ChangeType.NORMAL);
  const emergency = await assessedChange(ChangeType.EMERGENCY);

  // The approver role alone lets nobody vote.
  const outsider = await clientAs("otto", ["approver"], ["developers"]);
  for (const vote of [
    () => outsider.approveChange({ ...rid(), changeRequestId: normal }),
    () => outsider.rejectChange({ ...rid(), changeRequestId: normal, reason: "no" }),
  ]) {
    const refused = await denied(vote());
    expect(refused.reason).toBe("CHANGE_APPROVAL_BOARD_MEMBER");
    expect(refused.metadata).toEqual({ rule: "change.approval.board_member", subject: "cab" });
    expect(refused.message).toContain('"cab"');
  }
  // A CAB member is not on the ECAB, nor is a member of the default "ecab" group once it is configured away.
  const cabMember = await clientAs("anna", ["approver"], ["cab", "ecab"]);
  const refused = await denied(cabMember.approveChange({ ...rid(), changeRequestId: emergency }));
  expect(refused.metadata).toEqual({ rule: "change.approval.board_member", subject: ECAB_GROUP });

  const viewer = await clientAs("vera", ["viewer"]);
  for (const id of [normal, emergency]) {
    const current = (await viewer.getChange({ changeRequestId: id })).change;
    expect([current?.state, current?.approvals]).toEqual([ChangeState.ASSESSED, []]);
  }
  expect((await cabMember.approveChange({ ...rid(), changeRequestId: normal })).change?.state).toBe(
    ChangeState.AUTHORIZED,
  );
  const erin = await clientAs("erin", ["approver"], [ECAB_GROUP]);
  expect((await erin.approveChange({ ...rid(), changeRequestId: emergency })).change?.state).toBe(
    ChangeState.AUTHORIZED,
  );
});

test("ListChanges filters by type and by text in the title or the key, case-insensitively", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const viewer = await clientAs("vera", ["viewer"]);
  const ci = uniqueId("ci-filters");
  const marker = uniqueId("Quokka");
  const raise = async (overrides: Record<string, unknown>) =>
    (await manager.raiseChange(rfc({ affectedCiIds: [ci], ...overrides }))).change as ChangeRequest;
  const normal = await raise({ title: `Resize the ${marker} cluster` });
  const emergency = await raise({ type: ChangeType.EMERGENCY, title: "Patch the 100% CPU bug" });
  const ids = (changes: ChangeRequest[]) => changes.map((c) => c.changeRequestId);

  // Types (scoped to this test's CI; newest first).
  expect(ids((await viewer.listChanges({ ciId: ci, types: [ChangeType.EMERGENCY] })).changes)).toEqual([
    emergency.changeRequestId,
  ]);
  expect(ids((await viewer.listChanges({ ciId: ci, types: [ChangeType.NORMAL] })).changes)).toEqual([
    normal.changeRequestId,
  ]);
  expect(
    ids((await viewer.listChanges({ ciId: ci, types: [ChangeType.NORMAL, ChangeType.EMERGENCY] })).changes),
  ).toEqual([emergency.changeRequestId, normal.changeRequestId]);
  expect((await viewer.listChanges({ ciId: ci, types: [ChangeType.STANDARD] })).changes).toEqual([]);

  // Text: part of the title in another case, the key in lower case; LIKE wildcards are literal.
  expect(ids((await viewer.listChanges({ text: marker.toUpperCase() })).changes)).toEqual([normal.changeRequestId]);
  expect(ids((await viewer.listChanges({ text: `the ${marker.toLowerCase()} clu` })).changes)).toEqual([
    normal.changeRequestId,
  ]);
  expect(ids((await viewer.listChanges({ text: emergency.key.toLowerCase() })).changes)).toEqual([
    emergency.changeRequestId,
  ]);
  expect(ids((await viewer.listChanges({ text: "%" })).changes)).toEqual([emergency.changeRequestId]);
  expect((await viewer.listChanges({ text: `${marker}-nothing` })).changes).toEqual([]);
  // Combined with the type filter, both must hold.
  expect((await viewer.listChanges({ text: marker, types: [ChangeType.EMERGENCY] })).changes).toEqual([]);
});

test("ListChanges pages newest first; a change raised between pages neither repeats nor shifts them", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const viewer = await clientAs("vera", ["viewer"]);
  const ci = uniqueId("ci-pages");
  const raise = async () => (await manager.raiseChange(rfc({ affectedCiIds: [ci] }))).change?.changeRequestId;
  const raised = [await raise(), await raise(), await raise()];
  const first = await viewer.listChanges({ ciId: ci, pageSize: 1 });
  const later = await raise();
  const seen = first.changes.map((c) => c.changeRequestId);
  for (let token = first.nextPageToken; token; ) {
    const page = await viewer.listChanges({ ciId: ci, pageSize: 1, pageToken: token });
    seen.push(...page.changes.map((c) => c.changeRequestId));
    token = page.nextPageToken;
  }
  // The pages hold the three raised before them, in the order of one listing of them all.
  const all = (await viewer.listChanges({ ciId: ci })).changes.map((c) => c.changeRequestId);
  expect([...all].sort()).toEqual([...raised, later].sort());
  expect(seen).toEqual(all.filter((id) => id !== later));
  const forged = errorDetails(
    await viewer.listChanges({ ciId: ci, pageToken: "2" }).then(
      () => new Error("a forged page token was accepted"),
      (e: unknown) => e,
    ),
  );
  expect([forged.code, forged.badRequest?.fieldViolations[0]?.field]).toEqual([status.INVALID_ARGUMENT, "page_token"]);
});

test("a ListChanges page token pages on with the filters that made it, at any page size; other filters or lists refuse it", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const viewer = await clientAs("vera", ["viewer"]);
  const ci = uniqueId("ci-scoped");
  for (let i = 0; i < 3; i++) await manager.raiseChange(rfc({ affectedCiIds: [ci] }));
  const ids = (changes: ChangeRequest[]) => changes.map((c) => c.changeRequestId);
  const all = ids((await viewer.listChanges({ ciId: ci })).changes);
  const types = [ChangeType.NORMAL, ChangeType.EMERGENCY];
  const first = await viewer.listChanges({ ciId: ci, types, pageSize: 1 });
  // The same filters, a list of them in another order, and a larger page.
  const rest = await viewer.listChanges({
    ciId: ci,
    types: [...types].reverse(),
    pageSize: 10,
    pageToken: first.nextPageToken,
  });
  expect(rest.nextPageToken).toBe("");
  expect([...ids(first.changes), ...ids(rest.changes)]).toEqual(all);
  expect(all).toHaveLength(3);

  const refusal = async (request: Parameters<typeof viewer.listChanges>[0]) =>
    errorDetails(
      await viewer.listChanges(request).then(
        () => new Error("the page token was accepted"),
        (e: unknown) => e,
      ),
    );
  // The same position as the gateway's list of changes would write it, with the same filters.
  const gatewayToken = encodePageToken(
    pageTokenScope("gateway.GET /v1/changes", { ciId: ci, type: ["NORMAL", "EMERGENCY"] }),
    new Date().toISOString(),
    randomUUID(),
  );
  for (const request of [
    { ciId: ci, pageToken: first.nextPageToken },
    { ciId: ci, types: [ChangeType.NORMAL], pageToken: first.nextPageToken },
    { ciId: ci, types, text: "upgrade", pageToken: first.nextPageToken },
    { ciId: uniqueId("ci"), types, pageToken: first.nextPageToken },
    { ciId: ci, types, pageToken: gatewayToken },
  ]) {
    const refused = await refusal(request);
    expect([refused.code, refused.badRequest?.fieldViolations[0]]).toEqual([
      status.INVALID_ARGUMENT,
      expect.objectContaining({
        field: "page_token",
        description: "page_token does not belong to this list and filters",
      }),
    ]);
  }
});

test("a retried request id returns the first result; invalid input is INVALID_ARGUMENT", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const request = rfc();
  const [a, b] = await Promise.all([manager.raiseChange(request), manager.raiseChange(request)]);
  expect(b).toEqual(a);
  expect(await manager.raiseChange(request)).toEqual(a);
  // Twins of a state change: the one that reads the state after the other committed must not be
  // refused ("already submitted") but answer as the other did.
  for (let i = 0; i < 5; i++) {
    const { change } = await manager.raiseChange(rfc());
    const twins = { ...rid(), changeRequestId: change?.changeRequestId as string };
    const [first, second] = await Promise.all([manager.submitChange(twins), manager.submitChange(twins)]);
    expect(second).toEqual(first);
  }

  const invalid = await manager
    .raiseChange({ ...rfc(), requestId: "nope", title: "", type: ChangeType.STANDARD })
    .catch((e: unknown) => e);
  const details = errorDetails(invalid);
  expect(details.code).toBe(status.INVALID_ARGUMENT);
  expect(details.badRequest?.fieldViolations.map((v) => v.field).sort()).toEqual(
    expect.arrayContaining(["request_id", "title"]),
  );
  await expect(manager.getChange({ changeRequestId: randomUUID() })).rejects.toMatchObject({ code: status.NOT_FOUND });
});

test("environments are named as the deployment service names them: Production or 'prod eu' is INVALID_ARGUMENT", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const violations = async (call: Promise<unknown>) => {
    const details = errorDetails(await call.catch((e: unknown) => e));
    return [details.code, details.badRequest?.fieldViolations.map((v) => [v.field, v.reason])];
  };
  expect(await violations(manager.raiseChange({ ...rfc(), environments: ["staging", "Production"] }))).toEqual([
    status.INVALID_ARGUMENT,
    [["environments[1]", "string.pattern"]],
  ]);
  const { change } = await manager.raiseChange({ ...rfc(), environments: ["eu-production"] });
  const changeRequestId = change?.changeRequestId as string;
  expect(
    await violations(manager.updateChange({ ...rid(), changeRequestId, ...rfc(), environments: ["prod eu"] })),
  ).toEqual([status.INVALID_ARGUMENT, [["environments[0]", "string.pattern"]]]);
  const freeze = { ...rid(), name: "peak", reason: "sale", window: slot().day };
  expect(await violations(manager.declareFreezeWindow({ ...freeze, scope: { environments: ["PRODUCTION"] } }))).toEqual(
    [status.INVALID_ARGUMENT, [["scope.environments[0]", "string.pattern"]]],
  );
  expect(
    await violations(manager.declareFreezeWindow({ ...freeze, scope: { environments: ["production", "production"] } })),
  ).toEqual([status.INVALID_ARGUMENT, [["scope.environments", "repeated.unique"]]]);
  expect((await manager.getChange({ changeRequestId })).change?.environments).toEqual(["eu-production"]);
});

test("a request id reused for another command is refused, even when the two requests encode alike", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const id = await authorizedChange();
  await manager.scheduleChange({ ...rid(), changeRequestId: id, window: slot().window });
  // Start and Complete requests are both {request_id, change_request_id}: the same bytes.
  const reused = rid();
  const started = await manager.startChangeImplementation({ ...reused, changeRequestId: id });
  expect(started.change?.state).toBe(ChangeState.IMPLEMENTING);
  const refused = await precondition(manager.completeChangeImplementation({ ...reused, changeRequestId: id }));
  expect(refused.violations.map((v) => v.type)).toEqual(["request.idempotency"]);
  expect((await manager.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.IMPLEMENTING);
  // The same command again is still a retry, answered with the change as it left it even after
  // the change has moved on (the answer is rebuilt from the change's events up to it).
  expect(await manager.startChangeImplementation({ ...reused, changeRequestId: id })).toEqual(started);
  const completed = await manager.completeChangeImplementation({ ...rid(), changeRequestId: id });
  expect(completed.change?.state).not.toBe(ChangeState.IMPLEMENTING);
  expect(await manager.startChangeImplementation({ ...reused, changeRequestId: id })).toEqual(started);
});

test("a request id is its caller's: another approver reusing it is refused, and their vote still counts with an id of their own", async () => {
  const requester = await clientAs("rita", ["change-manager"]);
  const anna = await clientAs("anna", ["approver"], ["cab"]);
  const ben = await clientAs("ben", ["approver"], ["cab"]);
  const { change } = await requester.raiseChange(rfc());
  const id = change?.changeRequestId as string;
  await requester.submitChange({ ...rid(), changeRequestId: id });
  await requester.assessChange({
    ...rid(),
    changeRequestId: id,
    impact: ChangeImpact.HIGH,
    urgency: ChangeUrgency.MEDIUM,
    requiredApprovals: 2,
    notes: "two votes",
  });
  const vote = { ...rid(), changeRequestId: id, comment: "ok" };
  const annas = await anna.approveChange(vote);
  // The same bytes from ben: not anna's answer (his vote would be lost), but a refusal.
  const refused = await precondition(ben.approveChange(vote));
  expect(refused.violations.map((v) => v.type)).toEqual(["request.idempotency"]);
  expect(await anna.approveChange(vote)).toEqual(annas);
  const bens = await ben.approveChange({ ...vote, ...rid() });
  expect(bens.change?.state).toBe(ChangeState.AUTHORIZED);
  expect(bens.change?.approvals.map((a) => a.approver)).toEqual(["anna", "ben"]);
});

test("ids of the other kinds of record are NOT_FOUND, not INTERNAL; ids in upper case find their record", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const { change } = await manager.raiseChange(rfc());
  const changeId = change?.changeRequestId as string;
  const { freezeWindow } = await manager.declareFreezeWindow({
    ...rid(),
    name: "kinds",
    window: slot().day,
    scope: { ciIds: [uniqueId("ci-kind")] },
  });
  const freezeId = freezeWindow?.freezeWindowId as string;
  const { template } = await manager.registerStandardChangeTemplate({
    ...rid(),
    name: uniqueId("kinds"),
    implementationPlan: "renew",
    backoutPlan: "restore",
    risk: ChangeRisk.LOW,
  });
  const templateId = template?.templateId as string;
  const code = (call: Promise<unknown>) =>
    call.then(
      () => "OK",
      (e: unknown) => status[errorDetails(e).code],
    );
  expect(
    await Promise.all([
      code(manager.raiseChange(rfc({ type: ChangeType.STANDARD, templateId: changeId }))),
      code(manager.liftFreezeWindow({ ...rid(), freezeWindowId: changeId, reason: "x" })),
      code(manager.retireStandardChangeTemplate({ ...rid(), templateId: freezeId, reason: "x" })),
      code(manager.submitChange({ ...rid(), changeRequestId: templateId })),
      code(manager.getChange({ changeRequestId: freezeId })),
    ]),
  ).toEqual(["FAILED_PRECONDITION", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]);
  // A command's NOT_FOUND names what is missing by the id the client sent: the record (absent,
  // or of another kind), or the task within it.
  const missing = (call: Promise<unknown>) =>
    call.then(
      () => undefined,
      (e: unknown) => errorDetails(e).resourceInfo,
    );
  const [unknown, unknownTask] = [randomUUID(), randomUUID()];
  expect(
    await Promise.all([
      missing(manager.updateChange({ ...rid(), changeRequestId: unknown, title: "Renamed change" })),
      missing(manager.liftFreezeWindow({ ...rid(), freezeWindowId: changeId, reason: "x" })),
      missing(manager.retireStandardChangeTemplate({ ...rid(), templateId: unknown, reason: "x" })),
      missing(manager.completeChangeTask({ ...rid(), changeRequestId: changeId, taskId: unknownTask })),
    ]),
  ).toEqual([
    expect.objectContaining({ resourceName: unknown }),
    expect.objectContaining({ resourceName: changeId }),
    expect.objectContaining({ resourceName: unknown }),
    expect.objectContaining({ resourceType: "change task", resourceName: unknownTask }),
  ]);
  expect(
    await Promise.all([
      code(manager.getChange({ changeRequestId: changeId.toUpperCase() })),
      code(manager.liftFreezeWindow({ ...rid(), freezeWindowId: freezeId.toUpperCase(), reason: "over" })),
      code(manager.retireStandardChangeTemplate({ ...rid(), templateId: templateId.toUpperCase(), reason: "old" })),
    ]),
  ).toEqual(["OK", "OK", "OK"]);
});

/** The change once it is in `state` (a consumer's reaction arrives meanwhile), as `client` reads it. */
const changeReaching = (
  client: Awaited<ReturnType<typeof clientAs>>,
  changeRequestId: string,
  state: ChangeState,
  description: string,
) =>
  waitFor(
    async () => {
      const { change } = await client.getChange({ changeRequestId });
      return change?.state === state ? change : undefined;
    },
    { timeoutMs: 30_000, description },
  );

/** Events of the release and deployment services, as they would publish them. */
const upstream = new PublishedStreams("olivia");

/** Publishes, as the release service would, that `releaseId` links `changeRequestId`; the event's id. */
async function publishReleaseLink(releaseId: string, changeRequestId: string): Promise<string> {
  const linked = upstream.event(
    "rdm/release",
    ReleaseChangeRequestLinkedSchema,
    releaseId,
    { releaseId, changeRequestId },
    { correlationId: randomUUID() },
  );
  await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [linked]);
  return linked.id;
}

test("a release link to a change key (linked before the release service required a UUID) is handled, not dead-lettered", async () => {
  const eventId = await publishReleaseLink(randomUUID(), "CHG-2026-0001");
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await waitFor(
      async () => (await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [eventId])).rowCount === 1,
      { timeoutMs: 30_000, description: "the link to a change key handled" },
    );
  } finally {
    await db.end();
  }
});

test("a release's link to a closed change (made before the release service heard of the close) is answered as refused", async () => {
  const requester = await clientAs("rita", ["release-coordinator"]);
  const manager = await clientAs("carl", ["change-manager"]);
  const approver = await clientAs("abe", ["approver"], ["cab"]);
  const id = (await requester.raiseChange(rfc())).change?.changeRequestId as string;
  await requester.submitChange({ ...rid(), changeRequestId: id });
  await manager.assessChange({ ...rid(), changeRequestId: id, impact: ChangeImpact.LOW, urgency: ChangeUrgency.LOW });
  await approver.rejectChange({ ...rid(), changeRequestId: id, reason: "too risky" });
  const closed = (await manager.closeChange({ ...rid(), changeRequestId: id })).change;
  const releaseId = randomUUID();
  await publishReleaseLink(releaseId, id);
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const answers = await waitFor(
      async () => {
        const { rows } = await db.query<{ data: Uint8Array }>(
          "SELECT data FROM events WHERE stream_id = $1 AND type = $2",
          [id, ChangeRequestReleaseUnlinkedSchema.typeName],
        );
        return rows.length > 0 ? rows.map((r) => fromBinary(ChangeRequestReleaseUnlinkedSchema, r.data)) : undefined;
      },
      { timeoutMs: 30_000, description: "the closed change's answer to the link" },
    );
    expect(answers).toMatchObject([{ releaseId, linkedReleaseId: "", refusedClosed: true, state: ChangeState.CLOSED }]);
  } finally {
    await db.end();
  }
  const viewer = await clientAs("vera", ["viewer"]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toMatchObject({
    state: ChangeState.CLOSED,
    linkedReleaseId: "",
    version: (closed?.version ?? 0n) + 1n,
  });
});

test("a release link and then a failed deployment of the linked release mark the change FAILED with its back-out plan", async () => {
  const id = await scheduledChange({ environments: ["production"] });
  const releaseId = randomUUID();
  const viewer = await clientAs("vera", ["viewer"]);

  // The release service links the change (its event, published here as it would be).
  await publishReleaseLink(releaseId, id);
  await waitFor(async () => (await viewer.getChange({ changeRequestId: id })).change?.linkedReleaseId === releaseId, {
    timeoutMs: 30_000,
    description: "change linked to the release",
  });

  const deploymentId = randomUUID();
  const event = upstream.event(
    "rdm/deployment",
    DeploymentFailedSchema,
    deploymentId,
    { deploymentId, releaseId, environment: "production", reason: "health check failed on 3 of 5 targets" },
    { actor: "ci-agent-7", correlationId: randomUUID() },
  );
  // Delivered twice (a redelivery): one effect.
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [event, event]);
  const change = await changeReaching(viewer, id, ChangeState.FAILED, "change FAILED by the deployment event");
  expect(change.failureReason).toContain("health check failed on 3 of 5 targets");
  expect(change.failureReason).toContain(deploymentId);

  // The second copy may still be in flight: count only once a later event on the same key (so the
  // same partition, consumed after both copies), one that moves no change, has been handled.
  const sentinel = upstream.event(
    "rdm/deployment",
    DeploymentStartedSchema,
    deploymentId,
    { deploymentId, releaseId, environment: "staging" },
    { actor: "ci-agent-7" },
  );
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [sentinel]);
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  await waitFor(
    async () => (await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [sentinel.id])).rowCount === 1,
    { timeoutMs: 30_000, description: "the event after both copies handled" },
  );
  const { rows } = await db.query(
    "SELECT type, data, metadata FROM events WHERE stream_id = $1 AND type = 'rdm.change.v1.ChangeRequestFailed'",
    [id],
  );
  await db.end();
  expect(rows).toHaveLength(1);
  expect(rows[0].metadata).toMatchObject({ actor: "ci-agent-7", causationId: event.id });
  expect(Buffer.from(rows[0].data).toString()).toContain("restore the pre-upgrade snapshot");
});

test("a deployment outcome naming the change moves it though the release's link has not arrived", async () => {
  const id = await scheduledChange({ environments: ["production"] });
  const viewer = await clientAs("vera", ["viewer"]);
  // The release service's link lags (or its relay has not published it): only the deployment
  // says which changes it implements, as its start's gates checked them.
  const [releaseId, deploymentId] = [randomUUID(), randomUUID()];
  const outcome = { deploymentId, releaseId, environment: "production", production: true, changeRequestIds: [id] };
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    upstream.event("rdm/deployment", DeploymentStartedSchema, deploymentId, outcome),
    upstream.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, outcome),
  ]);
  const change = await changeReaching(
    viewer,
    id,
    ChangeState.IMPLEMENTED,
    "change IMPLEMENTED by the deployment naming it",
  );
  expect(change.linkedReleaseId).toBe("");
});

test("deployments of the linked release move the change: started -> IMPLEMENTING, succeeded -> IMPLEMENTED; other environments and unknown event types are ignored", async () => {
  const releaseId = randomUUID();
  const id = await scheduledChange({ environments: ["production"], linkedReleaseId: releaseId });
  const viewer = await clientAs("vera", ["viewer"]);
  const deploymentEvent = (
    schema: typeof DeploymentStartedSchema | typeof DeploymentSucceededSchema,
    deploymentId: string,
    environment: string,
    environmentSequence: bigint,
  ) =>
    upstream.event("rdm/deployment", schema as typeof DeploymentStartedSchema, deploymentId, {
      deploymentId,
      releaseId,
      environment,
      environmentSequence,
    });
  const staging = randomUUID();
  const production = randomUUID();
  // A type of this topic the service does not know yet (the deployment service adds types): skipped.
  const unknown = {
    ...deploymentEvent(DeploymentStartedSchema, production, "production", 1n),
    id: randomUUID(),
    type: "rdm.deployment.v1.DeploymentPlanCreated",
    data: new Uint8Array([0x0a, 0x01, 0x78]),
  };
  // Staging first: had it counted, the change would be IMPLEMENTED by staging alone.
  await publishInTurn([
    unknown,
    deploymentEvent(DeploymentStartedSchema, staging, "staging", 1n),
    deploymentEvent(DeploymentSucceededSchema, staging, "staging", 2n),
  ]);
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    deploymentEvent(DeploymentStartedSchema, production, "production", 2n),
  ]);
  const implementing = await changeReaching(
    viewer,
    id,
    ChangeState.IMPLEMENTING,
    "change IMPLEMENTING after the production deployment started",
  );
  expect(implementing.state).toBe(ChangeState.IMPLEMENTING);
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    deploymentEvent(DeploymentSucceededSchema, production, "production", 3n),
  ]);
  await changeReaching(
    viewer,
    id,
    ChangeState.IMPLEMENTED,
    "change IMPLEMENTED after the production deployment succeeded",
  );
  // The staging deployment touched nothing: only the production deployment's events are in the stream.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const { rows } = await db.query(
    "SELECT type, data FROM events WHERE stream_id = $1 AND version > 5 ORDER BY version",
    [id],
  );
  // Handled (the marker), not dead-lettered.
  const handled = await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [unknown.id]);
  await db.end();
  expect(handled.rowCount).toBe(1);
  expect(rows.map((r) => r.type.replace("rdm.change.v1.", ""))).toEqual([
    "ChangeRequestScheduled",
    "ChangeImplementationStarted",
    "ChangeRequestImplemented",
  ]);
  for (const row of rows.slice(1)) expect(Buffer.from(row.data).toString()).toContain(production);
});

/**
 * Publishes the events one at a time, each once the service handled the one before: events of
 * different deployments have different keys, so only this keeps them in order.
 */
async function publishInTurn(events: CloudEvent[]) {
  for (const event of events) {
    await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [event]);
    await handled(event.id);
  }
}

/** Runs `work` on a connection of its own to the service's database. */
async function withDatabase<T>(work: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return await work(db);
  } finally {
    await db.end();
  }
}

/** Resolves once the change service handled the event (its consumer's marker), by id. */
const handled = (eventId: string) =>
  withDatabase((db) =>
    waitFor(
      async () => (await db.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [eventId])).rowCount === 1,
      { timeoutMs: 30_000, description: `event ${eventId} handled` },
    ),
  );

/** The change's events after `version`: type (short) and data. */
const eventsOf = (changeRequestId: string, afterVersion = 0) =>
  withDatabase(async (db) => {
    const { rows } = await db.query<{ type: string; data: Buffer }>(
      "SELECT type, data FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version",
      [changeRequestId, afterVersion],
    );
    return rows.map((r) => ({ type: r.type.replace("rdm.change.v1.", ""), data: Buffer.from(r.data).toString() }));
  });

test("a change naming no environment is implemented by its release's deployment to production; other environments leave it alone", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  // Environments of this test's own; each deployment event says whether its environment is
  // production, as the deployment service's do.
  const staging = uniqueId("staging");
  const production = uniqueId("live");
  const releaseId = randomUUID();
  const id = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const scheduledAt = (await viewer.getChange({ changeRequestId: id })).change?.version ?? 0n;
  const deployment = (
    schema: typeof DeploymentStartedSchema | typeof DeploymentSucceededSchema | typeof DeploymentFailedSchema,
    deploymentId: string,
    environment: string,
    extra: Record<string, unknown> = {},
  ) =>
    upstream.event("rdm/deployment", schema as typeof DeploymentStartedSchema, deploymentId, {
      deploymentId,
      releaseId,
      environment,
      ...extra,
    });
  const first = randomUUID();
  const second = randomUUID();
  const toProduction = randomUUID();
  // Had staging counted, the change would be FAILED by the first deployment, or IMPLEMENTED by the second.
  await publishInTurn([
    deployment(DeploymentStartedSchema, first, staging, { production: false }),
    deployment(DeploymentFailedSchema, first, staging, { reason: "smoke test failed", production: false }),
    deployment(DeploymentStartedSchema, second, staging, { production: false }),
    deployment(DeploymentSucceededSchema, second, staging, { production: false }),
    deployment(DeploymentStartedSchema, toProduction, production, { production: true }),
  ]);
  await changeReaching(
    viewer,
    id,
    ChangeState.IMPLEMENTING,
    "change IMPLEMENTING once the production deployment started",
  );
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    deployment(DeploymentSucceededSchema, toProduction, production, { production: true }),
  ]);
  await waitFor(
    async () => (await viewer.getChange({ changeRequestId: id })).change?.state === ChangeState.IMPLEMENTED,
    { timeoutMs: 30_000, description: "change IMPLEMENTED once the production deployment succeeded" },
  );
  const after = await eventsOf(id, Number(scheduledAt));
  expect(after.map((e) => e.type)).toEqual(["ChangeImplementationStarted", "ChangeRequestImplemented"]);
  for (const event of after) expect(event.data).toContain(toProduction);
});

test("a change to production whose deployment's start did not say production is implemented by the success", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const id = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const scheduledAt = (await viewer.getChange({ changeRequestId: id })).change?.version ?? 0n;
  // A start from a deployment service that did not say production yet does not count; the success does.
  const production = uniqueId("live");
  const deploymentId = randomUUID();
  const about = { deploymentId, releaseId, environment: production };
  const started = upstream.event("rdm/deployment", DeploymentStartedSchema, deploymentId, about);
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [started]);
  await handled(started.id);
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.SCHEDULED);
  await publishEvents(producer, `${topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, [
    upstream.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, { ...about, production: true }),
  ]);
  await waitFor(
    async () => (await viewer.getChange({ changeRequestId: id })).change?.state === ChangeState.IMPLEMENTED,
    { timeoutMs: 30_000, description: "change IMPLEMENTED once the production deployment succeeded" },
  );
  const after = await eventsOf(id, Number(scheduledAt));
  expect(after.map((e) => e.type)).toEqual(["ChangeImplementationStarted", "ChangeRequestImplemented"]);
});

/**
 * A change of a release implemented in production by `implementing`'s success; `about` names a
 * deployment of that release there (`other` is another one).
 */
async function implementedInProduction() {
  const releaseId = randomUUID();
  const id = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const production = uniqueId("live");
  const [implementing, other] = [randomUUID(), randomUUID()];
  const about = (deploymentId: string) => ({ deploymentId, releaseId, environment: production, production: true });
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentStartedSchema, implementing, about(implementing)),
    upstream.event("rdm/deployment", DeploymentSucceededSchema, implementing, about(implementing)),
  ]);
  return { id, implementing, other, about };
}

test("an implemented change fails when the deployment that implemented it is backed out by hand; another's rollback leaves it", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const { id, implementing, other, about } = await implementedInProduction();
  const implemented = (await viewer.getChange({ changeRequestId: id })).change;
  expect(implemented).toMatchObject({ state: ChangeState.IMPLEMENTED, implementedByDeploymentId: implementing });
  // A later deployment of the release rolled back leaves the change as its own deployment left it.
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentRolledBackSchema, other, { ...about(other), reason: "smoke failed" }),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.IMPLEMENTED);
  // As a read-model row written before the upgrade, which does not say what implemented it.
  await withDatabase(async (db) => {
    const { rows } = await db.query<{ data: Buffer }>("SELECT data FROM change_requests WHERE change_request_id = $1", [
      id,
    ]);
    const row = fromBinary(ChangeRequestSchema, rows[0]?.data ?? new Uint8Array());
    row.implementedByDeploymentId = "";
    const data = toBinary(ChangeRequestSchema, row);
    await db.query("UPDATE change_requests SET data = $2 WHERE change_request_id = $1", [id, data]);
  });
  // Its own deployment backed out by hand: the change failed, with its back-out plan.
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentRolledBackSchema, implementing, {
      ...about(implementing),
      reason: "error rate doubled",
    }),
  ]);
  const failed = (await viewer.getChange({ changeRequestId: id })).change;
  expect(failed).toMatchObject({ state: ChangeState.FAILED });
  expect(failed?.failureReason).toContain(`deployment ${implementing}`);
  expect(failed?.failureReason).toContain("error rate doubled");
  const after = await eventsOf(id, Number(implemented?.version));
  expect(after.map((e) => e.type)).toEqual(["ChangeRequestFailed"]);
});

test("an implemented change fails when the deployment that implemented it records a failure (its rollback given up); another's leaves it", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const { id, implementing, other, about } = await implementedInProduction();
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentFailedSchema, other, { ...about(other), reason: "disk full" }),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.IMPLEMENTED);
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentFailedSchema, implementing, {
      ...about(implementing),
      reason: "rollback given up: host gone",
    }),
  ]);
  const failed = (await viewer.getChange({ changeRequestId: id })).change;
  expect(failed).toMatchObject({ state: ChangeState.FAILED });
  expect(failed?.failureReason).toContain("rollback given up: host gone");
});

test("a deployment moves only the changes its start checked: one linked to the release since is left", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const linkedChange = () => scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const [checked, since] = [await linkedChange(), await linkedChange()];
  const deploymentId = randomUUID();
  const about = { deploymentId, releaseId, environment: uniqueId("live"), production: true };
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentStartedSchema, deploymentId, { ...about, changeRequestIds: [checked] }),
    upstream.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, {
      ...about,
      changeRequestIds: [checked.toUpperCase()],
    }),
  ]);
  expect((await viewer.getChange({ changeRequestId: checked })).change?.state).toBe(ChangeState.IMPLEMENTED);
  expect((await viewer.getChange({ changeRequestId: since })).change?.state).toBe(ChangeState.SCHEDULED);
});

/** A production deployment's fields, naming the changes it implements (as its begin recorded them). */
const implementing = (deploymentId: string, releaseId: string, changeRequestIds: string[]) => ({
  deploymentId,
  releaseId,
  environment: uniqueId("live"),
  production: true,
  changeRequestIds,
  changeRequestIdsRecorded: true,
});

test("a deployment rolled back before it began leaves its scheduled change; one failing fails it", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const linked = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const about = (deploymentId: string) => implementing(deploymentId, releaseId, [linked]);
  const notBegun = randomUUID();
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentRolledBackSchema, notBegun, { ...about(notBegun), reason: "not today" }),
  ]);
  expect((await viewer.getChange({ changeRequestId: linked })).change?.state).toBe(ChangeState.SCHEDULED);
  const failed = randomUUID();
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentFailedSchema, failed, { ...about(failed), reason: "smoke failed" }),
  ]);
  expect((await viewer.getChange({ changeRequestId: linked })).change?.state).toBe(ChangeState.FAILED);
});

test("a deployment's reaction picks its commands on the change's stream, not on a query-table row behind it", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const manager = await clientAs("carl", ["change-manager"]);
  const releaseId = randomUUID();
  const linked = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const scheduled = await withDatabase(
    async (db) =>
      (await db.query("SELECT state, data FROM change_requests WHERE change_request_id = $1", [linked])).rows[0],
  );
  // Started by hand; the row is then put back as it was, as if the reaction read it just before.
  await manager.startChangeImplementation({ ...rid(), changeRequestId: linked });
  await withDatabase((db) =>
    db.query("UPDATE change_requests SET state = $2, data = $3 WHERE change_request_id = $1", [
      linked,
      scheduled.state,
      scheduled.data,
    ]),
  );
  const deploymentId = randomUUID();
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentRolledBackSchema, deploymentId, {
      ...implementing(deploymentId, releaseId, [linked]),
      reason: "smoke failed",
    }),
  ]);
  // A change it was implementing, as its stream says: failed.
  expect((await viewer.getChange({ changeRequestId: linked })).change?.state).toBe(ChangeState.FAILED);
});

test("a deployment whose whole list names no change moves none; one from before the list existed moves the release's", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const linked = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const outcome = (deploymentId: string, recorded: boolean) => {
    const about = { deploymentId, releaseId, environment: uniqueId("live"), production: true };
    const named = { changeRequestIds: [], changeRequestIdsRecorded: recorded };
    return [
      upstream.event("rdm/deployment", DeploymentStartedSchema, deploymentId, { ...about, ...named }),
      upstream.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, { ...about, ...named }),
    ];
  };
  // Its changes all unlinked before it began: it implements none.
  await publishInTurn(outcome(randomUUID(), true));
  expect((await viewer.getChange({ changeRequestId: linked })).change?.state).toBe(ChangeState.SCHEDULED);
  await publishInTurn(outcome(randomUUID(), false));
  expect((await viewer.getChange({ changeRequestId: linked })).change?.state).toBe(ChangeState.IMPLEMENTED);
});

test("a change naming several environments is implemented by the success in the last of them; only that deployment's back-out fails it", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const [staging, production] = [uniqueId("staging"), uniqueId("live")];
  const id = await scheduledChange({ environments: [staging, production], linkedReleaseId: releaseId });
  const [first, last] = [randomUUID(), randomUUID()];
  const inStaging = { deploymentId: first, releaseId, environment: staging, production: false };
  const inProduction = { deploymentId: last, releaseId, environment: production, production: true };
  const succeededInStaging = () => upstream.event("rdm/deployment", DeploymentSucceededSchema, first, inStaging);
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentStartedSchema, first, inStaging),
    succeededInStaging(),
    // The staging success said again (a new event of it) adds nothing.
    succeededInStaging(),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toMatchObject({
    state: ChangeState.IMPLEMENTING,
    implementedEnvironments: [staging],
  });
  const progress = (await eventsOf(id)).filter((e) => e.type === "ChangeRequestEnvironmentImplemented");
  expect(progress).toHaveLength(1);
  expect(progress[0]?.data).toContain(production);
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentStartedSchema, last, inProduction),
    upstream.event("rdm/deployment", DeploymentSucceededSchema, last, inProduction),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toMatchObject({
    state: ChangeState.IMPLEMENTED,
    implementedByDeploymentId: last,
  });
  // Backing out the staging deployment leaves the change; backing out what implemented it fails it.
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentRolledBackSchema, first, { ...inStaging, reason: "by hand" }),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.IMPLEMENTED);
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentRolledBackSchema, last, { ...inProduction, reason: "by hand" }),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.FAILED);
});

test("a change naming two production environments is implemented by the success in the second; staging, never deployed, is not awaited", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const [staging, eu, us] = [uniqueId("staging"), uniqueId("prod-eu"), uniqueId("prod-us")];
  const id = await scheduledChange({ environments: [staging, eu, us], linkedReleaseId: releaseId });
  const productionEnvironments = [eu, us].sort();
  const [first, second] = [randomUUID(), randomUUID()];
  const about = (deploymentId: string, environment: string) => ({
    deploymentId,
    releaseId,
    environment,
    production: true,
    productionEnvironments,
  });
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentStartedSchema, first, about(first, eu)),
    upstream.event("rdm/deployment", DeploymentSucceededSchema, first, about(first, eu)),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toMatchObject({
    state: ChangeState.IMPLEMENTING,
    implementedEnvironments: [eu],
  });
  await publishInTurn([
    upstream.event("rdm/deployment", DeploymentStartedSchema, second, about(second, us)),
    upstream.event("rdm/deployment", DeploymentSucceededSchema, second, about(second, us)),
  ]);
  expect((await viewer.getChange({ changeRequestId: id })).change).toMatchObject({
    state: ChangeState.IMPLEMENTED,
    implementedByDeploymentId: second,
  });
});

test("a production success while the change has open tasks: the change awaits them, and the last one's completion implements it", async () => {
  const manager = await clientAs("carl", ["change-manager"]);
  const viewer = await clientAs("vera", ["viewer"]);
  const releaseId = randomUUID();
  const id = await scheduledChange({ environments: [], linkedReleaseId: releaseId });
  const tasks = [];
  for (const title of ["verify dashboards", "notify support"])
    tasks.push((await manager.addChangeTask({ ...rid(), changeRequestId: id, title, assignee: "dora" })).taskId);
  const scheduledAt = (await viewer.getChange({ changeRequestId: id })).change?.version ?? 0n;
  const deploymentId = randomUUID();
  const about = { deploymentId, releaseId, environment: uniqueId("live"), production: true };
  const succeeded = upstream.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, about);
  await publishInTurn([upstream.event("rdm/deployment", DeploymentStartedSchema, deploymentId, about), succeeded]);
  const awaiting = (await viewer.getChange({ changeRequestId: id })).change;
  expect(awaiting).toMatchObject({ state: ChangeState.IMPLEMENTING, awaitingTasksDeploymentId: deploymentId });
  await manager.completeChangeTask({ ...rid(), changeRequestId: id, taskId: tasks[0] as string });
  expect((await viewer.getChange({ changeRequestId: id })).change?.state).toBe(ChangeState.IMPLEMENTING);
  const last = await manager.completeChangeTask({ ...rid(), changeRequestId: id, taskId: tasks[1] as string });
  expect(last.change).toMatchObject({ state: ChangeState.IMPLEMENTED, awaitingTasksDeploymentId: "" });
  const after = await eventsOf(id, Number(scheduledAt));
  expect(after.map((e) => e.type)).toEqual([
    "ChangeImplementationStarted",
    "ChangeRequestImplementationAwaitingTasks",
    "ChangeTaskCompleted",
    "ChangeTaskCompleted",
    "ChangeRequestImplemented",
  ]);
  expect(after.at(-1)?.data).toContain(deploymentId);
});

test("a change linked to one release keeps it: another release's link is answered 'not linked to you'", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const first = randomUUID();
  const second = randomUUID();
  const id = await authorizedChange({ linkedReleaseId: first });
  // The release named at RaiseChange links it back (the release service's mirror), once.
  await handled(await publishReleaseLink(first, id));
  const before = (await viewer.getChange({ changeRequestId: id })).change?.version ?? 0n;
  await handled(await publishReleaseLink(second, id));
  expect((await viewer.getChange({ changeRequestId: id })).change?.linkedReleaseId).toBe(first);
  const answer = await eventsOf(id, Number(before));
  expect(answer.map((e) => e.type)).toEqual(["ChangeRequestReleaseUnlinked"]);
  // It names the release it is not linked to and the one it keeps.
  expect(answer[0]?.data).toContain(second);
  expect(answer[0]?.data).toContain(first);
  // The first release's own link, mirrored again, changes nothing.
  await handled(await publishReleaseLink(first, id));
  expect(await eventsOf(id, Number(before))).toHaveLength(1);
});

test("a release named at RaiseChange that never linked the change back gives way to one that does", async () => {
  const viewer = await clientAs("vera", ["viewer"]);
  const named = randomUUID();
  const linking = randomUUID();
  const id = await authorizedChange({ linkedReleaseId: named });
  const before = (await viewer.getChange({ changeRequestId: id })).change?.version ?? 0n;
  await handled(await publishReleaseLink(linking, id));
  expect((await viewer.getChange({ changeRequestId: id })).change?.linkedReleaseId).toBe(linking);
  const taken = await eventsOf(id, Number(before));
  expect(taken.map((e) => e.type)).toEqual(["ChangeRequestReleaseLinked"]);
  expect(taken[0]?.data).toContain(named);
});

test("CI and environment names are stored and found as given, whatever characters the form allows", async () => {
  const requester = await clientAs("rita", ["release-coordinator"]);
  const odd = (name: string) =>
    `${uniqueId(name)} "quoted", {braced}, back\\slash, NULL, \u00e9t\u00e9 \t ${"\u{1F680}"}`;
  // Environment names take the deployment service's form, in which "null" is still a word an
  // array literal would read as NULL.
  const [cis, environments] = [
    [odd("ci"), odd("ci"), "NULL"],
    [uniqueId("env"), "null"],
  ];
  const { change } = await requester.raiseChange(rfc({ affectedCiIds: cis, environments }));
  expect(change).toMatchObject({ affectedCiIds: cis, environments });
  const viewer = await clientAs("vera", ["viewer"]);
  for (const ci of cis.slice(0, 2)) {
    expect((await viewer.listChanges({ ciId: ci })).changes.map((c) => c.changeRequestId)).toEqual([
      change?.changeRequestId,
    ]);
  }
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    const { rows } = await pool.query(
      "SELECT affected_ci_ids, environments FROM change_requests WHERE change_request_id = $1",
      [change?.changeRequestId],
    );
    expect(rows).toEqual([{ affected_ci_ids: cis, environments }]);
  } finally {
    await pool.end();
  }
});

// Reads every row the tests above wrote.
test("the query tables rebuilt from the event streams equal the live ones, also while commands run", async () => {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  try {
    const snapshot = async () => ({
      changes: (await pool.query("SELECT * FROM change_requests ORDER BY change_request_id")).rows,
      freezes: (await pool.query("SELECT * FROM freeze_windows ORDER BY freeze_window_id")).rows,
      templates: (await pool.query("SELECT * FROM standard_change_templates ORDER BY template_id")).rows,
    });
    const live = await snapshot();
    expect(live.changes.length).toBeGreaterThan(10);
    const counts = await rebuildQueryTables(pool, new EventStore(pool), changeQueryTables);
    expect(counts).toEqual({
      change: live.changes.length,
      freeze: live.freezes.length,
      template: live.templates.length,
    });
    expect(await snapshot()).toEqual(live);

    // The operator's command, while changes are raised until it ends: each command's rows are
    // written before the rebuild locks the tables (and rebuilt from its events) or after it.
    const requester = await clientAs("rita", ["release-coordinator"]);
    const ids: (string | undefined)[] = [];
    const { stdout } = await repeatWhilePending(rebuildTablesCommand(databaseUrl), async () => {
      const raised = await Promise.all(Array.from({ length: 4 }, () => requester.raiseChange(rfc())));
      ids.push(...raised.map((r) => r.change?.changeRequestId));
    });
    expect(stdout).toMatch(
      /^change rebuild-tables: rebuilt change_requests, .* from \d+ change, \d+ freeze, \d+ template streams\n$/,
    );
    const after = await snapshot();
    expect(after.changes.map((c) => c.change_request_id)).toEqual(expect.arrayContaining(ids));
    await rebuildQueryTables(pool, new EventStore(pool), changeQueryTables);
    expect(await snapshot()).toEqual(after);
  } finally {
    await pool.end();
  }
});

test("rebuild-tables refuses a database without the service's tables, and creates none there", async () => {
  const other = await createTestDatabase("change_rebuild_elsewhere");
  try {
    const refused = await rebuildTablesCommand(other.url).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    expect(refused).toMatchObject({ code: 2 });
    expect(refused?.stderr).toMatch(
      /^change rebuild-tables: the database does not hold the change service's tables of this version .* is DATABASE_URL its database\?/,
    );
    const otherPool = new pg.Pool({ connectionString: other.url, max: 1 });
    try {
      const { rows } = await otherPool.query("SELECT to_regclass('change_requests') AS t, to_regclass('events') AS e");
      expect(rows).toEqual([{ t: null, e: null }]);
    } finally {
      await otherPool.end();
    }
  } finally {
    await other.drop();
  }
});

test("a change is cancelled by its requester or a change manager until its implementation starts", async () => {
  const requester = await clientAs("rita", ["release-coordinator"]);
  const manager = await clientAs("carl", ["change-manager"]);
  const other = await clientAs("otto", ["release-coordinator"]);
  const { window } = slot();
  const ci = uniqueId("ci-cancel");
  const id = await authorizedChange({ affectedCiIds: [ci] });
  await manager.scheduleChange({ ...rid(), changeRequestId: id, window });

  const refused = await denied(other.cancelChange({ ...rid(), changeRequestId: id, reason: "not mine" }));
  expect(refused.metadata.rule).toBe("change.cancel.requester_or_change_manager");
  const cancelled = await manager.cancelChange({ ...rid(), changeRequestId: id, reason: "superseded" });
  expect(cancelled.change).toMatchObject({
    state: ChangeState.CANCELLED,
    cancellationReason: "superseded",
    cancelledBy: "carl",
  });
  const again = await precondition(manager.cancelChange({ ...rid(), changeRequestId: id, reason: "twice" }));
  expect(again.violations.map((v) => v.type)).toEqual(["change.cancel.state"]);

  // Its window is free again: off the calendar, and no collision for a change on the same CI.
  const viewer = await clientAs("vera", ["viewer"]);
  const calendar = await viewer.getChangeCalendar({ window });
  expect(calendar.changes.map((c) => c.changeRequestId)).not.toContain(id);
  const next = await authorizedChange({ affectedCiIds: [ci] });
  const booked = await manager.scheduleChange({ ...rid(), changeRequestId: next, window, strict: true });
  expect(booked.collisions).toEqual([]);
  expect((await viewer.listChanges({ states: [ChangeState.CANCELLED], ciId: ci })).changes).toHaveLength(1);

  // The requester (without the change-manager role) cancels a draft; nobody cancels once it is implementing.
  const { change: draft } = await requester.raiseChange(rfc());
  const own = await requester.cancelChange({
    ...rid(),
    changeRequestId: draft?.changeRequestId as string,
    reason: "x",
  });
  expect(own.change?.state).toBe(ChangeState.CANCELLED);
  // An admin, allowed everything, cancels as a change manager would.
  const admin = await clientAs("ada", ["admin"]);
  const { change: theirs } = await requester.raiseChange(rfc());
  const byAdmin = await admin.cancelChange({
    ...rid(),
    changeRequestId: theirs?.changeRequestId as string,
    reason: "x",
  });
  expect(byAdmin.change).toMatchObject({ state: ChangeState.CANCELLED, cancelledBy: "ada" });
  await manager.startChangeImplementation({ ...rid(), changeRequestId: next });
  const late = await precondition(manager.cancelChange({ ...rid(), changeRequestId: next, reason: "too late" }));
  expect(late.violations.map((v) => v.type)).toEqual(["change.cancel.implementation_started"]);
});

test("a change rejected, then closed, stays off the calendar as a rejected one", async () => {
  const requester = await clientAs("rita", ["release-coordinator"]);
  const manager = await clientAs("carl", ["change-manager"]);
  const approver = await clientAs("abe", ["approver"], ["cab"]);
  const viewer = await clientAs("vera", ["viewer"]);
  const { window } = slot();
  const raised = async () =>
    (await requester.raiseChange(rfc({ plannedWindow: window }))).change?.changeRequestId as string;
  const [rejected, planned] = [await raised(), await raised()];
  await requester.submitChange({ ...rid(), changeRequestId: rejected });
  await manager.assessChange({
    ...rid(),
    changeRequestId: rejected,
    impact: ChangeImpact.LOW,
    urgency: ChangeUrgency.LOW,
  });
  await approver.rejectChange({ ...rid(), changeRequestId: rejected, reason: "too risky" });
  const onCalendar = async () => (await viewer.getChangeCalendar({ window })).changes.map((c) => c.changeRequestId);
  expect(await onCalendar()).toEqual([planned]);
  const closed = await manager.closeChange({ ...rid(), changeRequestId: rejected });
  expect(closed.change).toMatchObject({ state: ChangeState.CLOSED, rejectionReason: "too risky" });
  expect(await onCalendar()).toEqual([planned]);
});

test("the first commit time is kept; one in the future beyond the clock skew is INVALID_ARGUMENT", async () => {
  const requester = await clientAs("rita", ["change-manager"]);
  const committed = timestampFromDate(new Date(Date.now() - 3 * 86_400_000));
  const { change } = await requester.raiseChange(rfc({ firstCommitTime: committed }));
  expect(change?.firstCommitTime).toEqual(committed);
  const id = change?.changeRequestId as string;

  const future = timestampFromDate(new Date(Date.now() + 60 * 60_000));
  for (const call of [
    requester.raiseChange(rfc({ firstCommitTime: future })),
    requester.updateChange({ ...rfc(), changeRequestId: id, firstCommitTime: future }),
  ]) {
    const details = errorDetails(await call.catch((e: unknown) => e));
    expect(details.code).toBe(status.INVALID_ARGUMENT);
    expect(details.badRequest?.fieldViolations.map((v) => v.field)).toEqual(["first_commit_time"]);
  }
  // Within the skew a commit time is accepted; an edit without one clears it.
  const skewed = timestampFromDate(new Date(Date.now() + 60_000));
  const edited = await requester.updateChange({ ...rfc(), changeRequestId: id, firstCommitTime: skewed });
  expect(edited.change?.firstCommitTime).toEqual(skewed);
  const cleared = await requester.updateChange({ ...rfc(), changeRequestId: id });
  expect(cleared.change?.firstCommitTime).toBeUndefined();
});
