import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type TimeWindow, TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { type ReleaseModel, ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  ApprovalStatus,
  LogEntryKind,
  ReleasePhase,
  ReleaseStatus,
  ReviewOutcome,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { EMERGENCY_MODEL, STANDARD_MODEL, seconds, validateModel } from "../src/domain/models.js";
import { fold, gateConditions, type ReleaseCommand, type ReleaseEvent } from "../src/domain/release.js";
import {
  advanceThroughGate,
  completeRequiredTasks,
  given,
  grantApprovals,
  member,
  RELEASE_ID,
  record,
  register,
  releaseOf,
  T0,
  types,
} from "./release-spec.js";

const HOUR = 3600_000;
const time = (t: Timestamp | undefined) => (t ? timestampDate(t).getTime() : Number.NaN);
const DAY = 24 * HOUR;
const registered = () => {
  const s: ReleaseEvent[] = [];
  record(s, register(), "rita");
  return s;
};
/** A standard release advanced to `phase`. */
function inPhase(phase: ReleasePhase) {
  const s = registered();
  while (releaseOf(s).phase !== phase) advanceThroughGate(s);
  return s;
}
const advance: ReleaseCommand = { kind: "advancePhase", fromPhase: ReleasePhase.UNSPECIFIED, changes: [] };

describe("RegisterRelease", () => {
  test("registers in the model's first phase, pins the model, starts the deadline and creates the template tasks", () => {
    const s: ReleaseEvent[] = [];
    const events = record(s, register(), "rita");
    expect(types(events)).toEqual(["ReleaseRegistered", "ReleaseTaskAdded", "ReleaseNotificationRequested"]);
    const r = releaseOf(s);
    expect(r).toMatchObject({
      releaseId: RELEASE_ID,
      phase: ReleasePhase.REGISTRATION,
      status: ReleaseStatus.ACTIVE,
      modelName: "standard",
      modelVersion: 1,
      phaseEntry: 1,
      registeredBy: "rita",
    });
    expect(time(r.phaseDueAt)).toBe(T0.getTime() + 5 * DAY);
    expect(r.tasks).toHaveLength(1);
    expect(r.tasks[0]).toMatchObject({ name: "Complete the release record", required: true, fromModel: true });
    expect(time(r.tasks[0]?.dueAt)).toBe(T0.getTime() + 2 * DAY);
    expect(events[2]).toMatchObject({ recipients: ["olivia", "carl", "sre-payments"] });
  });

  test("refuses to register the same release twice", () => {
    given(registered()).when(register()).thenFails("release.unique_id", "ALREADY_EXISTS");
  });

  test("a release keeps the model version it was registered with", () => {
    const s = registered();
    const v2 = create(ReleaseModelSchema, { ...STANDARD_MODEL, version: 2, phases: EMERGENCY_MODEL.phases });
    // A newer model version exists; the release's state still comes from its own registration.
    expect(v2.version).toBe(2);
    expect(fold(s).model?.version).toBe(1);
    expect(fold(s).model?.phases.map((p) => p.phase)).toEqual(STANDARD_MODEL.phases.map((p) => p.phase));
  });

  test("commands other than register need a registered release", () => {
    given([]).when({ kind: "abandonRelease", reason: "nope" }).thenFails("release.exists", "NOT_FOUND");
  });
});

describe("UpdatePlanning", () => {
  test("replaces the planning fields", () => {
    const s = registered();
    record(s, {
      kind: "updatePlanning",
      title: "Payments 4.3",
      description: "d",
      category: "pay",
      coordinator: "cora",
      stakeholders: ["a", "b"],
      risk: 3,
      plannedWindow: undefined,
    });
    expect(releaseOf(s)).toMatchObject({
      title: "Payments 4.3",
      coordinator: "cora",
      stakeholders: ["a", "b"],
      risk: 3,
    });
  });

  test("an update without a planned window clears it; an event recorded before the flag kept it", () => {
    const window = create(TimeWindowSchema, {
      start: timestampFromDate(T0),
      end: timestampFromDate(new Date(T0.getTime() + HOUR)),
    });
    const s = registered();
    const planning = (plannedWindow: TimeWindow | undefined): ReleaseCommand => ({
      kind: "updatePlanning",
      title: "Payments 4.3",
      description: "",
      category: "",
      coordinator: "cora",
      stakeholders: [],
      risk: 0,
      plannedWindow,
    });
    record(s, planning(window));
    expect(releaseOf(s).plannedWindow).toEqual(window);
    const [cleared] = record(s, planning(undefined));
    expect(releaseOf(s).plannedWindow).toBeUndefined();
    // The same event as recorded before planned_window_replaced: the window stays.
    const older = { ...cleared, plannedWindowReplaced: false } as ReleaseEvent;
    expect(fold([...s.slice(0, -1), older]).release?.plannedWindow).toEqual(window);
  });
});

describe("AdvancePhase", () => {
  test("is refused with every unmet condition while required tasks are open", () => {
    const s = inPhase(ReleasePhase.PLANNING);
    const refusal = given(s).when(advance).thenFails("gate.not_met");
    expect(refusal.conditions.map((c) => [c.rule, c.description])).toEqual([
      ["gate.required_task_done", 'required task "Prepare the release plan" is OPEN'],
      ["gate.required_task_done", 'required task "Prepare the back-out plan" is OPEN'],
    ]);
  });

  test("advances once the gate holds: new phase entry, deadline and template tasks", () => {
    const s = registered();
    completeRequiredTasks(s);
    const later = new Date(T0.getTime() + DAY);
    const events = record(s, advance, "rita", later);
    expect(types(events)).toEqual(["ReleasePhaseAdvanced", "ReleaseTaskAdded", "ReleaseNotificationRequested"]);
    expect(events[0]).toMatchObject({
      fromPhase: ReleasePhase.REGISTRATION,
      toPhase: ReleasePhase.ASSESSMENT,
      phaseEntry: 2,
    });
    expect(time(releaseOf(s).phaseDueAt)).toBe(later.getTime() + 5 * DAY);
    expect(releaseOf(s).tasks.filter((t) => t.phase === ReleasePhase.ASSESSMENT)).toHaveLength(1);
  });

  test("is refused when the caller expects another phase", () => {
    const s = registered();
    completeRequiredTasks(s);
    given(s)
      .when({ ...advance, fromPhase: ReleasePhase.PLANNING } as ReleaseCommand)
      .thenFails("phase.expected");
  });

  test("cancelled optional tasks and optional tasks never block the gate", () => {
    const s = registered();
    record(s, {
      kind: "addTask",
      taskId: "t-opt",
      name: "Nice to have",
      required: false,
      assignee: "",
      dueAt: undefined,
    });
    completeRequiredTasks(s);
    expect(gateConditions(fold(s), []).every((c) => c.met)).toBe(true);
  });

  test("an ad hoc required task blocks the gate like a template task", () => {
    const s = registered();
    completeRequiredTasks(s);
    record(s, { kind: "addTask", taskId: "t-adhoc", name: "Sign-off", required: true, assignee: "", dueAt: undefined });
    expect(
      given(s)
        .when(advance)
        .thenFails("gate.not_met")
        .conditions.map((c) => c.subject),
    ).toEqual(["t-adhoc"]);
  });

  test("in APPROVAL: no approval requested, then pending below quorum, then rejected", () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    expect(
      given(s)
        .when(advance)
        .thenFails("gate.not_met")
        .conditions.map((c) => [c.rule, c.subject]),
    ).toEqual([["gate.approval_requested", "cab"]]);
    record(s, { kind: "requestApproval", approvalId: "a1", approverGroup: "cab" }, "carl");
    record(s, { kind: "approveRelease", approvalId: "a1", comment: "" }, member("ann", "cab"));
    expect(
      given(s)
        .when(advance)
        .thenFails("gate.not_met")
        .conditions.map((c) => [c.rule, c.description]),
    ).toEqual([["gate.approval_granted", "cab approvals 1 of 2"]]);
    record(s, { kind: "rejectRelease", approvalId: "a1", reason: "too risky" }, member("bob", "cab"));
    expect(
      given(s)
        .when(advance)
        .thenFails("gate.not_met")
        .conditions.map((c) => [c.rule, c.description]),
    ).toEqual([["gate.approval_rejected", "cab rejected (bob: too risky); request a new approval"]]);
  });

  test("in APPROVAL: linked change requests must be authorized (unknown and wrong states are each listed)", () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    grantApprovals(s);
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1" });
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-2" });
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-3" });
    const refusal = given(s)
      .when({
        ...advance,
        changes: [
          { changeRequestId: "chg-1", state: "AUTHORIZED" },
          { changeRequestId: "chg-2", state: "SUBMITTED" },
          { changeRequestId: "chg-3", state: undefined },
        ],
      } as ReleaseCommand)
      .thenFails("gate.not_met");
    expect(refusal.conditions.map((c) => [c.rule, c.subject])).toEqual([
      ["gate.linked_change_state", "chg-2"],
      ["gate.linked_change_state", "chg-3"],
    ]);
    expect(refusal.conditions[1]?.description).toContain("unknown");
    const ok = record(s, {
      ...advance,
      changes: ["chg-1", "chg-2", "chg-3"].map((id) => ({ changeRequestId: id, state: "SCHEDULED" })),
    } as ReleaseCommand);
    expect(ok[0]).toMatchObject({ toPhase: ReleasePhase.BUILD_AND_TEST });
  });

  test("a model may require at least one linked change request", () => {
    const model = create(ReleaseModelSchema, {
      name: "strict",
      version: 1,
      phases: [{ phase: ReleasePhase.REGISTRATION, requiresLinkedChange: true }, { phase: ReleasePhase.CLOSED }],
    });
    const s: ReleaseEvent[] = [];
    record(s, register({}, model));
    given(s).when({ kind: "closeRelease", changes: [] }).thenFails("close.review_required");
    record(s, { kind: "recordReview", outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "", followUpActions: [] });
    expect(
      given(s)
        .when({ kind: "closeRelease", changes: [] })
        .thenFails("gate.not_met")
        .conditions.map((c) => c.rule),
    ).toEqual(["gate.linked_change_present"]);
  });

  test("leaving BUILD_AND_TEST freezes the package", () => {
    const s = inPhase(ReleasePhase.BUILD_AND_TEST);
    record(s, { kind: "attachArtifact", artifact: artifact("art-1") });
    completeRequiredTasks(s);
    const events = record(s, advance);
    expect(types(events).slice(0, 2)).toEqual(["ReleasePackageFrozen", "ReleasePhaseAdvanced"]);
    expect(releaseOf(s).packageFrozen).toBe(true);
    given(s)
      .when({ kind: "attachArtifact", artifact: artifact("art-2") })
      .thenFails("package.frozen");
    given(s).when({ kind: "detachArtifact", artifactId: "art-1" }).thenFails("package.frozen");
  });

  test("the step into CLOSED is CloseRelease, not an advance", () => {
    const s = inPhase(ReleasePhase.REVIEW);
    given(s).when(advance).thenFails("phase.close_with_review");
  });
});

const artifact = (id: string, name = `svc-${id}`) => ({
  artifactId: id,
  name,
  version: "1.2.3",
  sha256: "a".repeat(64),
  configurationItemId: "ci-payments",
});

describe("ReworkRelease", () => {
  test("needs a reason and an earlier phase of the model", () => {
    const s = inPhase(ReleasePhase.PLANNING);
    given(s)
      .when({ kind: "reworkRelease", toPhase: ReleasePhase.ASSESSMENT, reason: " " })
      .thenFails("rework.reason_required");
    given(s)
      .when({ kind: "reworkRelease", toPhase: ReleasePhase.PLANNING, reason: "again" })
      .thenFails("rework.earlier_phase");
    given(s)
      .when({ kind: "reworkRelease", toPhase: ReleasePhase.DEPLOYMENT, reason: "again" })
      .thenFails("rework.earlier_phase");
  });

  test("refuses a phase the model does not have", () => {
    const s: ReleaseEvent[] = [];
    record(s, register({}, EMERGENCY_MODEL));
    advanceThroughGate(s);
    advanceThroughGate(s);
    given(s)
      .when({ kind: "reworkRelease", toPhase: ReleasePhase.ASSESSMENT, reason: "x y" })
      .thenFails("rework.phase_in_model");
  });

  test("goes back with a new phase entry: fresh tasks, and earlier approvals no longer count", () => {
    const s = inPhase(ReleasePhase.BUILD_AND_TEST);
    const events = record(s, { kind: "reworkRelease", toPhase: ReleasePhase.APPROVAL, reason: "scope changed" });
    expect(events[0]).toMatchObject({
      fromPhase: ReleasePhase.BUILD_AND_TEST,
      toPhase: ReleasePhase.APPROVAL,
      reason: "scope changed",
    });
    expect(releaseOf(s).phase).toBe(ReleasePhase.APPROVAL);
    expect(
      given(s)
        .when(advance)
        .thenFails("gate.not_met")
        .conditions.map((c) => c.rule),
    ).toEqual(["gate.approval_requested"]);
  });

  test("going back to BUILD_AND_TEST reopens a frozen package", () => {
    const s = inPhase(ReleasePhase.DEPLOYMENT);
    expect(releaseOf(s).packageFrozen).toBe(true);
    record(s, { kind: "reworkRelease", toPhase: ReleasePhase.BUILD_AND_TEST, reason: "rebuild needed" });
    expect(releaseOf(s).packageFrozen).toBe(false);
    record(s, { kind: "attachArtifact", artifact: artifact("art-9") });
  });
});

describe("AbandonRelease", () => {
  test("needs a reason, then the release accepts no further command", () => {
    const s = registered();
    given(s).when({ kind: "abandonRelease", reason: "" }).thenFails("abandon.reason_required");
    record(s, { kind: "abandonRelease", reason: "superseded by 4.3" });
    expect(releaseOf(s)).toMatchObject({ status: ReleaseStatus.ABANDONED, abandonReason: "superseded by 4.3" });
    for (const command of [advance, { kind: "abandonRelease", reason: "again" } as ReleaseCommand])
      given(s).when(command).thenFails("release.active");
    // Its gate is shut: it goes nowhere.
    const shut = gateConditions(fold(s), []).filter((c) => !c.met);
    expect(shut.map((c) => [c.rule, c.description])).toContainEqual([
      "gate.release_active",
      "the release is ABANDONED",
    ]);
  });
});

describe("CloseRelease", () => {
  test("only from the phase before CLOSED", () => {
    given(inPhase(ReleasePhase.VERIFICATION))
      .when({ kind: "closeRelease", changes: [] })
      .thenFails("close.from_last_phase");
  });

  test("requires the post-implementation review, then closes", () => {
    const s = inPhase(ReleasePhase.REVIEW);
    given(s).when({ kind: "closeRelease", changes: [] }).thenFails("close.review_required");
    record(
      s,
      {
        kind: "recordReview",
        outcome: ReviewOutcome.PARTIALLY_SUCCESSFUL,
        lessonsLearned: "canary earlier",
        followUpActions: ["add canary"],
      },
      "olivia",
    );
    expect(releaseOf(s).review).toMatchObject({ outcome: ReviewOutcome.PARTIALLY_SUCCESSFUL, reviewedBy: "olivia" });
    const events = record(s, { kind: "closeRelease", changes: [] });
    expect(types(events)).toEqual(["ReleaseClosed", "ReleaseNotificationRequested"]);
    expect(releaseOf(s)).toMatchObject({ phase: ReleasePhase.CLOSED, status: ReleaseStatus.CLOSED });
    given(s).when({ kind: "setBackOutPlan", backOutPlan: "x" }).thenFails("release.active");
  });

  test("a rework discards the review: after the redeployment the release is reviewed again", () => {
    const s = inPhase(ReleasePhase.REVIEW);
    record(s, { kind: "recordReview", outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "", followUpActions: [] });
    record(s, { kind: "reworkRelease", toPhase: ReleasePhase.DEPLOYMENT, reason: "rollout broke checkout" });
    expect(releaseOf(s).review).toBeUndefined();
    while (releaseOf(s).phase !== ReleasePhase.REVIEW) advanceThroughGate(s);
    given(s).when({ kind: "closeRelease", changes: [] }).thenFails("close.review_required");
    record(s, { kind: "recordReview", outcome: ReviewOutcome.BACKED_OUT, lessonsLearned: "", followUpActions: [] });
    const [closed] = record(s, { kind: "closeRelease", changes: [] });
    expect(closed).toMatchObject({ outcome: ReviewOutcome.BACKED_OUT });
  });

  test("the review can only be recorded in the phase before CLOSED", () => {
    given(inPhase(ReleasePhase.DEPLOYMENT))
      .when({
        kind: "recordReview",
        outcome: ReviewOutcome.FAILED,
        lessonsLearned: "",
        followUpActions: [],
      })
      .thenFails("review.in_review_phase");
  });
});

describe("Approvals", () => {
  const inApproval = () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    record(s, { kind: "requestApproval", approvalId: "a1", approverGroup: "cab" }, "carl");
    return s;
  };
  const approve = (approvalId = "a1"): ReleaseCommand => ({ kind: "approveRelease", approvalId, comment: "lgtm" });
  const reject = (approvalId = "a1"): ReleaseCommand => ({ kind: "rejectRelease", approvalId, reason: "too risky" });
  // CAB members: the standard model's APPROVAL names no members, so the groups claim decides.
  const ann = member("ann", "cab");
  const ben = member("ben", "cab");

  test("only groups the phase requires can be asked", () => {
    given(inPhase(ReleasePhase.APPROVAL))
      .when({ kind: "requestApproval", approvalId: "x", approverGroup: "ecab" })
      .thenFails("approval.required_by_phase");
    given(registered())
      .when({ kind: "requestApproval", approvalId: "x", approverGroup: "cab" })
      .thenFails("approval.required_by_phase");
  });

  test("a second request while one is pending is refused", () => {
    given(inApproval())
      .when({ kind: "requestApproval", approvalId: "a2", approverGroup: "cab" })
      .thenFails("approval.not_pending");
  });

  test("separation of duties: owner, coordinator, registrar and requester cannot approve", () => {
    const s = inApproval();
    // Sitting on the board does not let them decide on their own release.
    for (const actor of ["olivia", "carl", "rita"]) {
      given(s).when(approve(), member(actor, "cab")).thenFails("approval.separation_of_duties", "PERMISSION_DENIED");
    }
    given(s)
      .when({ kind: "rejectRelease", approvalId: "a1", reason: "no" }, member("olivia", "cab"))
      .thenFails("approval.separation_of_duties", "PERMISSION_DENIED");
  });

  test("separation of duties holds across coordinator changes while the approval is pending", () => {
    const s = inApproval();
    const planning = (coordinator: string): ReleaseCommand => ({
      kind: "updatePlanning",
      title: releaseOf(s).title,
      description: releaseOf(s).description,
      category: releaseOf(s).category,
      coordinator,
      stakeholders: releaseOf(s).stakeholders,
      risk: releaseOf(s).risk,
      plannedWindow: releaseOf(s).plannedWindow,
    });
    // Ann coordinates for a moment, hands back, then tries to vote: refused.
    record(s, planning("ann"));
    record(s, planning("carl"));
    given(s).when(approve(), ann).thenFails("approval.separation_of_duties", "PERMISSION_DENIED");
    expect(releaseOf(s).approvals[0]?.ineligibleApprovers).toEqual(["olivia", "carl", "rita", "ann"]);
    // Ben never coordinated: his vote counts.
    expect(record(s, approve(), ben)[0]).toMatchObject({ approver: "ben" });
  });

  test("quorum: the second distinct approval grants it and says so", () => {
    const s = inApproval();
    const [first] = record(s, approve(), ann);
    expect(first).toMatchObject({ quorumReached: false });
    given(s).when(approve(), ann).thenFails("approval.one_vote_per_approver");
    const events = record(s, approve(), ben);
    expect(events[0]).toMatchObject({ quorumReached: true });
    expect(types(events)).toEqual(["ReleaseApprovalGranted", "ReleaseNotificationRequested"]);
    expect(events[1]).toMatchObject({ recipients: ["olivia", "carl"] });
    expect(releaseOf(s).approvals[0]?.status).toBe(ApprovalStatus.APPROVED);
    given(s).when(approve(), member("cid", "cab")).thenFails("approval.pending");
  });

  test("a rejection needs a reason and blocks until a new request", () => {
    const s = inApproval();
    given(s).when({ kind: "rejectRelease", approvalId: "a1", reason: " " }, ann).thenFails("approval.reason_required");
    record(s, { kind: "rejectRelease", approvalId: "a1", reason: "no back-out plan" }, ann);
    expect(releaseOf(s).approvals[0]?.status).toBe(ApprovalStatus.REJECTED);
    given(s).when(approve(), ben).thenFails("approval.pending");
    record(s, { kind: "requestApproval", approvalId: "a2", approverGroup: "cab" }, "carl");
    record(s, approve("a2"), ann);
    record(s, approve("a2"), ben);
    record(s, advance);
    expect(releaseOf(s).phase).toBe(ReleasePhase.BUILD_AND_TEST);
  });

  test("unknown approvals and approvals of a left phase are refused", () => {
    const s = inApproval();
    given(s).when(approve("nope"), ann).thenFails("approval.exists", "NOT_FOUND");
    record(s, { kind: "reworkRelease", toPhase: ReleasePhase.PLANNING, reason: "replan" });
    given(s).when(approve(), ann).thenFails("approval.current_phase");
  });

  test("a group with named members accepts only their votes, whatever the token's groups say", () => {
    const model = create(ReleaseModelSchema, {
      name: "named",
      version: 1,
      phases: [
        { phase: ReleasePhase.REGISTRATION, approvals: [{ approverGroup: "board", quorum: 1, members: ["ann"] }] },
        { phase: ReleasePhase.CLOSED },
      ],
    });
    const s: ReleaseEvent[] = [];
    record(s, register({}, model));
    record(s, { kind: "requestApproval", approvalId: "a1", approverGroup: "board" }, "carl");
    for (const command of [approve(), reject()])
      expect(given(s).when(command, member("ben", "board")).refusal()).toMatchObject({
        rule: "approval.group_member",
        code: "PERMISSION_DENIED",
        subject: "board",
      });
    // ann's token carries no groups at all: the model's list decides alone.
    record(s, approve(), "ann");
    expect(releaseOf(s).approvals[0]?.status).toBe(ApprovalStatus.APPROVED);
  });

  test("without named members, only callers whose token carries the group may vote", () => {
    const s = inApproval();
    for (const caller of ["dora", member("dora", "ecab"), member("dora", "CAB", "cab-observers")])
      for (const command of [approve(), reject()]) {
        const refusal = given(s).when(command, caller).refusal();
        expect(refusal).toMatchObject({ rule: "approval.group_member", code: "PERMISSION_DENIED", subject: "cab" });
        expect(refusal.message).toContain("cab");
      }
    const [granted] = record(s, approve(), member("dora", "ecab", "cab"));
    expect(granted).toMatchObject({ approver: "dora", quorumReached: false });
    record(s, reject(), ben);
    expect(releaseOf(s).approvals[0]?.votes.map((v) => [v.approver, v.approved])).toEqual([
      ["dora", true],
      ["ben", false],
    ]);
  });

  test("an approval request notifies the group", () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    const events = record(s, { kind: "requestApproval", approvalId: "a9", approverGroup: "cab" }, "carl");
    expect(events[1]).toMatchObject({ recipients: ["group:cab"], trigger: "rdm.release.v1.ReleaseApprovalRequested" });
  });
});

describe("Tasks", () => {
  const withTask = (required = false) => {
    const s = registered();
    record(s, {
      kind: "addTask",
      taskId: "t1",
      name: "Smoke test",
      required,
      assignee: "",
      dueAt: timestampFromDate(new Date(T0.getTime() + HOUR)),
    });
    return s;
  };
  const task = (s: ReleaseEvent[]) => releaseOf(s).tasks.find((t) => t.taskId === "t1");

  test("ad hoc tasks join the current phase entry", () => {
    expect(task(withTask())).toMatchObject({
      phase: ReleasePhase.REGISTRATION,
      phaseEntry: 1,
      fromModel: false,
      status: TaskStatus.OPEN,
    });
  });

  test("assign, start, complete", () => {
    const s = withTask();
    record(s, { kind: "assignTask", taskId: "t1", assignee: "dev" });
    record(s, { kind: "startTask", taskId: "t1" });
    given(s).when({ kind: "startTask", taskId: "t1" }).thenFails("task.startable");
    record(s, { kind: "completeTask", taskId: "t1" });
    expect(task(s)).toMatchObject({ assignee: "dev", status: TaskStatus.DONE });
    given(s).when({ kind: "completeTask", taskId: "t1" }).thenFails("task.open");
    given(s).when({ kind: "assignTask", taskId: "t1", assignee: "x" }).thenFails("task.open");
  });

  test("optional tasks can be cancelled with a reason, required ones cannot", () => {
    const s = withTask();
    given(s).when({ kind: "cancelTask", taskId: "t1", reason: "" }).thenFails("task.reason_required");
    record(s, { kind: "cancelTask", taskId: "t1", reason: "not needed" });
    expect(task(s)?.status).toBe(TaskStatus.CANCELLED);
    given(withTask(true))
      .when({ kind: "cancelTask", taskId: "t1", reason: "not needed" })
      .thenFails("task.required_not_cancellable");
  });

  test("unknown tasks and tasks of a phase already left are refused", () => {
    const s = withTask();
    given(s).when({ kind: "startTask", taskId: "zz" }).thenFails("task.exists", "NOT_FOUND");
    completeRequiredTasks(s);
    record(s, advance);
    given(s).when({ kind: "completeTask", taskId: "t1" }).thenFails("task.current_phase");
  });
});

describe("Package, change links, back-out plan and log", () => {
  test("artifacts attach once per id and per name, and detach", () => {
    const s = registered();
    record(s, { kind: "attachArtifact", artifact: artifact("art-1", "payments-api") });
    given(s)
      .when({ kind: "attachArtifact", artifact: artifact("art-1", "other") })
      .thenFails("package.artifact_unique", "ALREADY_EXISTS");
    given(s)
      .when({ kind: "attachArtifact", artifact: artifact("art-2", "payments-api") })
      .thenFails("package.one_version_per_artifact");
    expect(releaseOf(s).package[0]).toMatchObject({ artifactId: "art-1", configurationItemId: "ci-payments" });
    record(s, { kind: "detachArtifact", artifactId: "art-1" });
    expect(releaseOf(s).package).toHaveLength(0);
    expect(given(s).when({ kind: "detachArtifact", artifactId: "art-1" }).refusal().code).toBe("NOT_FOUND");
  });

  test("change requests link once and unlink", () => {
    const s = registered();
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1" });
    expect(given(s).when({ kind: "linkChangeRequest", changeRequestId: "chg-1" }).refusal().code).toBe(
      "ALREADY_EXISTS",
    );
    record(s, { kind: "unlinkChangeRequest", changeRequestId: "chg-1" });
    expect(releaseOf(s).linkedChangeRequestIds).toEqual([]);
    expect(given(s).when({ kind: "unlinkChangeRequest", changeRequestId: "chg-1" }).refusal().code).toBe("NOT_FOUND");
  });

  test("a change linked to another release is refused; one linked to this release or to none is linked", () => {
    const s = registered();
    const other = "0b8f1e2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
    given(s)
      .when({ kind: "linkChangeRequest", changeRequestId: "chg-1", changeLinkedTo: other })
      .thenFails("change.linked_elsewhere", "FAILED_PRECONDITION");
    expect(
      given(s).when({ kind: "linkChangeRequest", changeRequestId: "chg-1", changeLinkedTo: other }).refusal().message,
    ).toContain(other);
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1", changeLinkedTo: RELEASE_ID.toUpperCase() });
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-2", changeLinkedTo: "" });
    expect(releaseOf(s).linkedChangeRequestIds).toEqual(["chg-1", "chg-2"]);
  });

  test("the change service's word mirrored: a link already there or an unlink of none records nothing", () => {
    const s = registered();
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1", mirror: true });
    expect(releaseOf(s).linkedChangeRequestIds).toEqual(["chg-1"]);
    expect(record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1", mirror: true })).toEqual([]);
    record(s, { kind: "unlinkChangeRequest", changeRequestId: "chg-1", mirror: true });
    expect(releaseOf(s).linkedChangeRequestIds).toEqual([]);
    expect(record(s, { kind: "unlinkChangeRequest", changeRequestId: "chg-1", mirror: true })).toEqual([]);
  });

  test("a link said again (relink) is recorded, listed once; a relink of a change no longer listed records nothing", () => {
    const s = registered();
    const id = "8E4C9D1E-0D3C-4A36-9D0E-1F2A3B4C5D6E";
    record(s, { kind: "linkChangeRequest", changeRequestId: id });
    const relinked = record(s, { kind: "linkChangeRequest", changeRequestId: id.toLowerCase(), relink: true });
    expect(relinked).toEqual([
      expect.objectContaining({
        $typeName: "rdm.release.v1.ReleaseChangeRequestLinked",
        changeRequestId: id,
        relinked: true,
      }),
    ]);
    expect(releaseOf(s).linkedChangeRequestIds).toEqual([id]);
    record(s, { kind: "unlinkChangeRequest", changeRequestId: id });
    expect(record(s, { kind: "linkChangeRequest", changeRequestId: id, relink: true })).toEqual([]);
    expect(releaseOf(s).linkedChangeRequestIds).toEqual([]);
  });

  test("a change whose implementation is under way or done stays linked; a closed one is linked nowhere; an abandoned release lets go of the others", () => {
    given(registered())
      .when({ kind: "linkChangeRequest", changeRequestId: "chg-1", changeState: "CLOSED" })
      .thenFails("change.closed", "FAILED_PRECONDITION");
    // Implemented by hand with no release, it may still be linked (an emergency change recorded after the fact).
    record(registered(), { kind: "linkChangeRequest", changeRequestId: "chg-1", changeState: "IMPLEMENTED" });
    for (const changeState of ["FAILED", "CLOSED"]) {
      const s = registered();
      record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1", changeState: "SCHEDULED" });
      record(s, { kind: "unlinkChangeRequest", changeRequestId: "chg-1", changeState });
      expect(releaseOf(s).linkedChangeRequestIds).toEqual([]);
    }
    for (const changeState of ["IMPLEMENTING", "IMPLEMENTED", "REVIEWED"]) {
      const s = registered();
      record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1", changeState: "SCHEDULED" });
      const refusal = given(s).when({ kind: "unlinkChangeRequest", changeRequestId: "chg-1", changeState }).refusal();
      expect([refusal.rule, refusal.message]).toEqual([
        "change.implementation_begun",
        expect.stringContaining(`is ${changeState}: it records this release's implementation`),
      ]);
      // The change service's word (its answer to a link) is mirrored whatever the state.
      record(s, { kind: "unlinkChangeRequest", changeRequestId: "chg-1", changeState, mirror: true });
      expect(releaseOf(s).linkedChangeRequestIds).toEqual([]);
    }
    const s = registered();
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-1", changeState: "AUTHORIZED" });
    record(s, { kind: "linkChangeRequest", changeRequestId: "chg-2", changeState: "DRAFT" });
    record(s, { kind: "abandonRelease", reason: "scrapped" });
    given(s).when({ kind: "linkChangeRequest", changeRequestId: "chg-3" }).thenFails("release.active");
    record(s, { kind: "unlinkChangeRequest", changeRequestId: "chg-1", changeState: "AUTHORIZED" });
    given(s)
      .when({ kind: "unlinkChangeRequest", changeRequestId: "chg-2", changeState: "IMPLEMENTING" })
      .thenFails("change.implementation_begun");
    expect(releaseOf(s).linkedChangeRequestIds).toEqual(["chg-2"]);
  });

  test("a UUID linked in capitals (before requests were lowercased) is the same change in either case", () => {
    const s = registered();
    const id = "8E4C9D1E-0D3C-4A36-9D0E-1F2A3B4C5D6E";
    record(s, { kind: "linkChangeRequest", changeRequestId: id });
    expect(given(s).when({ kind: "linkChangeRequest", changeRequestId: id.toLowerCase() }).refusal().code).toBe(
      "ALREADY_EXISTS",
    );
    // Unlinked by its lowercase form, the link as stored is removed.
    record(s, { kind: "unlinkChangeRequest", changeRequestId: id.toLowerCase() });
    expect(releaseOf(s).linkedChangeRequestIds).toEqual([]);
    // Keys that are not UUIDs keep their case.
    record(s, { kind: "linkChangeRequest", changeRequestId: "CHG-1" });
    expect(given(s).when({ kind: "unlinkChangeRequest", changeRequestId: "chg-1" }).refusal().code).toBe("NOT_FOUND");
  });

  test("back-out plan and deviations / risks / issues log", () => {
    const s = registered();
    record(s, { kind: "setBackOutPlan", backOutPlan: "redeploy 4.1" });
    record(s, { kind: "recordLogEntry", entryId: "e1", entryKind: LogEntryKind.RISK, text: "db migration" }, "carl");
    record(s, { kind: "recordLogEntry", entryId: "e2", entryKind: LogEntryKind.DEVIATION, text: "late start" }, "carl");
    expect(releaseOf(s).backOutPlan).toBe("redeploy 4.1");
    expect(releaseOf(s).log.map((e) => [e.kind, e.text, e.recordedBy])).toEqual([
      [LogEntryKind.RISK, "db migration", "carl"],
      [LogEntryKind.DEVIATION, "late start", "carl"],
    ]);
  });
});

describe("Deadlines", () => {
  const due = T0.getTime() + 5 * DAY;
  const at = (ms: number) => new Date(ms);

  test("a deadline is reported missed once, only after it passed", () => {
    const s = registered();
    given(s)
      .when({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due - 1))
      .thenFails("deadline.passed");
    const events = record(s, { kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due));
    expect(types(events)).toEqual(["ReleaseDeadlineMissed", "ReleaseNotificationRequested"]);
    expect(events[1]).toMatchObject({ recipients: ["olivia", "carl"] });
    given(s)
      .when({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due + 1))
      .thenFails("deadline.missed_once");
  });

  test("a phase left in time has no missed deadline", () => {
    const s = registered();
    advanceThroughGate(s);
    given(s)
      .when({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due + DAY))
      .thenFails("deadline.phase_current");
  });

  test("escalation comes once, after the grace period, and only for a reported miss", () => {
    const s = registered();
    given(s)
      .when({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + 2 * DAY))
      .thenFails("deadline.missed_first");
    record(s, { kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due));
    given(s)
      .when({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + DAY - 1))
      .thenFails("deadline.grace_passed");
    const events = record(s, { kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + DAY));
    expect(types(events)).toEqual(["ReleaseDeadlineEscalated", "ReleaseNotificationRequested"]);
    expect(events[1]).toMatchObject({ recipients: ["olivia", "carl", "role:release-manager"] });
    expect(releaseOf(s).deadlineMisses[0]).toMatchObject({ phase: ReleasePhase.REGISTRATION, escalated: true });
    given(s)
      .when({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + 2 * DAY))
      .thenFails("deadline.escalated_once");
  });

  test("a phase without a deadline never misses it", () => {
    const model = create(ReleaseModelSchema, {
      name: "nodeadline",
      version: 1,
      phases: [{ phase: ReleasePhase.REGISTRATION }, { phase: ReleasePhase.CLOSED }],
    });
    const s: ReleaseEvent[] = [];
    record(s, register({}, model));
    expect(releaseOf(s).phaseDueAt).toBeUndefined();
    given(s).when({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due)).thenFails("deadline.exists");
  });
});

describe("Default models", () => {
  test("the standard model walks every phase from registration to close", () => {
    const s = registered();
    const seen = [releaseOf(s).phase];
    while (releaseOf(s).phase !== ReleasePhase.REVIEW) {
      advanceThroughGate(s);
      seen.push(releaseOf(s).phase);
    }
    record(s, { kind: "recordReview", outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "", followUpActions: [] });
    record(s, { kind: "closeRelease", changes: [] });
    seen.push(releaseOf(s).phase);
    expect(seen.map((p) => ReleasePhase[p])).toEqual([
      "REGISTRATION",
      "ASSESSMENT",
      "PLANNING",
      "APPROVAL",
      "BUILD_AND_TEST",
      "DEPLOYMENT",
      "VERIFICATION",
      "REVIEW",
      "CLOSED",
    ]);
  });

  test("the emergency model is short and approved by the ECAB with a quorum of one", () => {
    const s: ReleaseEvent[] = [];
    record(s, register({ type: 3 }, EMERGENCY_MODEL));
    record(s, advance);
    expect(releaseOf(s).phase).toBe(ReleasePhase.APPROVAL);
    expect(
      given(s)
        .when(advance)
        .thenFails("gate.not_met")
        .conditions.map((c) => c.subject),
    ).toEqual(["ecab"]);
    record(s, { kind: "requestApproval", approvalId: "e1", approverGroup: "ecab" }, "carl");
    given(s)
      .when({ kind: "approveRelease", approvalId: "e1", comment: "go" }, member("ann", "cab"))
      .thenFails("approval.group_member");
    record(s, { kind: "approveRelease", approvalId: "e1", comment: "go" }, member("ann", "ecab"));
    record(s, advance);
    expect(releaseOf(s).phase).toBe(ReleasePhase.BUILD_AND_TEST);
    expect(time(releaseOf(s).phaseDueAt)).toBe(T0.getTime() + 8 * HOUR);
    expect(EMERGENCY_MODEL.phases.map((p) => ReleasePhase[p.phase])).toEqual([
      "REGISTRATION",
      "APPROVAL",
      "BUILD_AND_TEST",
      "DEPLOYMENT",
      "REVIEW",
      "CLOSED",
    ]);
  });

  test("both default models follow the model rules", () => {
    expect(() => validateModel(STANDARD_MODEL)).not.toThrow();
    expect(() => validateModel(EMERGENCY_MODEL)).not.toThrow();
  });
});

describe("Model rules", () => {
  const model = (phases: ReleaseModel["phases"] | object[]) =>
    create(ReleaseModelSchema, { name: "m", version: 1, phases: phases as never });
  const rule = (m: ReleaseModel) => {
    try {
      validateModel(m);
    } catch (error) {
      return (error as { rule: string }).rule;
    }
    return undefined;
  };
  test.each([
    ["model.first_phase", [{ phase: ReleasePhase.PLANNING }, { phase: ReleasePhase.CLOSED }]],
    ["model.last_phase", [{ phase: ReleasePhase.REGISTRATION }, { phase: ReleasePhase.REVIEW }]],
    [
      "model.phase_order",
      [
        { phase: ReleasePhase.REGISTRATION },
        { phase: ReleasePhase.REVIEW },
        { phase: ReleasePhase.PLANNING },
        { phase: ReleasePhase.CLOSED },
      ],
    ],
    [
      "model.closed_phase_empty",
      [{ phase: ReleasePhase.REGISTRATION }, { phase: ReleasePhase.CLOSED, deadline: seconds(5) }],
    ],
    [
      "model.approver_group_unique",
      [
        {
          phase: ReleasePhase.REGISTRATION,
          approvals: [
            { approverGroup: "a", quorum: 1 },
            { approverGroup: "a", quorum: 1 },
          ],
        },
        { phase: ReleasePhase.CLOSED },
      ],
    ],
    [
      "model.quorum_reachable",
      [
        { phase: ReleasePhase.REGISTRATION, approvals: [{ approverGroup: "a", quorum: 2, members: ["x"] }] },
        { phase: ReleasePhase.CLOSED },
      ],
    ],
    // Votes compare subjects folded: "ann", "Ann" and a full-width "ａｎｎ" are one approver.
    [
      "model.quorum_reachable",
      [
        {
          phase: ReleasePhase.REGISTRATION,
          approvals: [{ approverGroup: "a", quorum: 2, members: ["ann", " Ann", "\uff41\uff4e\uff4e"] }],
        },
        { phase: ReleasePhase.CLOSED },
      ],
    ],
  ])("%s", (expected, phases) => {
    expect(rule(model(phases))).toBe(expected);
  });
});
