import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
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
import { gateConditions, type ReleaseCommand } from "../src/domain/release.js";
import { member, RELEASE_ID, register, Scenario, T0, types } from "./release-spec.js";

const HOUR = 3600_000;
const time = (t: Timestamp | undefined) => (t ? timestampDate(t).getTime() : Number.NaN);
const DAY = 24 * HOUR;
const registered = () => {
  const s = new Scenario();
  s.run(register(), "rita");
  return s;
};
/** A standard release advanced to `phase`. */
function inPhase(phase: ReleasePhase) {
  const s = registered();
  while (s.release.phase !== phase) s.advance();
  return s;
}
const advance: ReleaseCommand = { kind: "advancePhase", fromPhase: ReleasePhase.UNSPECIFIED, changes: [] };

describe("RegisterRelease", () => {
  test("registers in the model's first phase, pins the model, starts the deadline and creates the template tasks", () => {
    const s = new Scenario();
    const events = s.run(register(), "rita");
    expect(types(events)).toEqual(["ReleaseRegistered", "ReleaseTaskAdded", "ReleaseNotificationRequested"]);
    const r = s.release;
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
    expect(registered().refusal(register()).rule).toBe("release.unique_id");
    expect(registered().refusal(register()).code).toBe("ALREADY_EXISTS");
  });

  test("a release keeps the model version it was registered with", () => {
    const s = registered();
    const v2 = create(ReleaseModelSchema, { ...STANDARD_MODEL, version: 2, phases: EMERGENCY_MODEL.phases });
    // A newer model version exists; the release's state still comes from its own registration.
    expect(v2.version).toBe(2);
    expect(s.state.model?.version).toBe(1);
    expect(s.state.model?.phases.map((p) => p.phase)).toEqual(STANDARD_MODEL.phases.map((p) => p.phase));
  });

  test("commands other than register need a registered release", () => {
    expect(new Scenario().refusal({ kind: "abandonRelease", reason: "nope" })).toMatchObject({
      rule: "release.exists",
      code: "NOT_FOUND",
    });
  });
});

describe("UpdatePlanning", () => {
  test("replaces the planning fields", () => {
    const s = registered();
    s.run({
      kind: "updatePlanning",
      title: "Payments 4.3",
      description: "d",
      category: "pay",
      coordinator: "cora",
      stakeholders: ["a", "b"],
      risk: 3,
      plannedWindow: undefined,
    });
    expect(s.release).toMatchObject({ title: "Payments 4.3", coordinator: "cora", stakeholders: ["a", "b"], risk: 3 });
  });
});

describe("AdvancePhase", () => {
  test("is refused with every unmet condition while required tasks are open", () => {
    const s = inPhase(ReleasePhase.PLANNING);
    const refusal = s.refusal(advance);
    expect(refusal.rule).toBe("gate.not_met");
    expect(refusal.conditions.map((c) => [c.rule, c.description])).toEqual([
      ["gate.required_task_done", 'required task "Prepare the release plan" is OPEN'],
      ["gate.required_task_done", 'required task "Prepare the back-out plan" is OPEN'],
    ]);
  });

  test("advances once the gate holds: new phase entry, deadline and template tasks", () => {
    const s = registered();
    s.completeRequiredTasks();
    const later = new Date(T0.getTime() + DAY);
    const events = s.run(advance, "rita", later);
    expect(types(events)).toEqual(["ReleasePhaseAdvanced", "ReleaseTaskAdded", "ReleaseNotificationRequested"]);
    expect(events[0]).toMatchObject({
      fromPhase: ReleasePhase.REGISTRATION,
      toPhase: ReleasePhase.ASSESSMENT,
      phaseEntry: 2,
    });
    expect(time(s.release.phaseDueAt)).toBe(later.getTime() + 5 * DAY);
    expect(s.release.tasks.filter((t) => t.phase === ReleasePhase.ASSESSMENT)).toHaveLength(1);
  });

  test("is refused when the caller expects another phase", () => {
    const s = registered();
    s.completeRequiredTasks();
    expect(s.refusal({ ...advance, fromPhase: ReleasePhase.PLANNING } as ReleaseCommand).rule).toBe("phase.expected");
  });

  test("cancelled optional tasks and optional tasks never block the gate", () => {
    const s = registered();
    s.run({ kind: "addTask", taskId: "t-opt", name: "Nice to have", required: false, assignee: "", dueAt: undefined });
    s.completeRequiredTasks();
    expect(gateConditions(s.state, []).every((c) => c.met)).toBe(true);
  });

  test("an ad hoc required task blocks the gate like a template task", () => {
    const s = registered();
    s.completeRequiredTasks();
    s.run({ kind: "addTask", taskId: "t-adhoc", name: "Sign-off", required: true, assignee: "", dueAt: undefined });
    expect(s.refusal(advance).conditions.map((c) => c.subject)).toEqual(["t-adhoc"]);
  });

  test("in APPROVAL: no approval requested, then pending below quorum, then rejected", () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    expect(s.refusal(advance).conditions.map((c) => [c.rule, c.subject])).toEqual([["gate.approval_requested", "cab"]]);
    s.run({ kind: "requestApproval", approvalId: "a1", approverGroup: "cab" }, "carl");
    s.run({ kind: "approveRelease", approvalId: "a1", comment: "" }, member("ann", "cab"));
    expect(s.refusal(advance).conditions.map((c) => [c.rule, c.description])).toEqual([
      ["gate.approval_granted", "cab approvals 1 of 2"],
    ]);
    s.run({ kind: "rejectRelease", approvalId: "a1", reason: "too risky" }, member("bob", "cab"));
    expect(s.refusal(advance).conditions.map((c) => [c.rule, c.description])).toEqual([
      ["gate.approval_rejected", "cab rejected (bob: too risky); request a new approval"],
    ]);
  });

  test("in APPROVAL: linked change requests must be authorized (unknown and wrong states are each listed)", () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    s.grantApprovals();
    s.run({ kind: "linkChangeRequest", changeRequestId: "chg-1" });
    s.run({ kind: "linkChangeRequest", changeRequestId: "chg-2" });
    s.run({ kind: "linkChangeRequest", changeRequestId: "chg-3" });
    const refusal = s.refusal({
      ...advance,
      changes: [
        { changeRequestId: "chg-1", state: "AUTHORIZED" },
        { changeRequestId: "chg-2", state: "SUBMITTED" },
        { changeRequestId: "chg-3", state: undefined },
      ],
    } as ReleaseCommand);
    expect(refusal.conditions.map((c) => [c.rule, c.subject])).toEqual([
      ["gate.linked_change_state", "chg-2"],
      ["gate.linked_change_state", "chg-3"],
    ]);
    expect(refusal.conditions[1]?.description).toContain("unknown");
    const ok = s.run({
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
    const s = new Scenario();
    s.run(register({}, model));
    expect(s.refusal({ kind: "closeRelease", changes: [] }).rule).toBe("close.review_required");
    s.run({ kind: "recordReview", outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "", followUpActions: [] });
    expect(s.refusal({ kind: "closeRelease", changes: [] }).conditions.map((c) => c.rule)).toEqual([
      "gate.linked_change_present",
    ]);
  });

  test("leaving BUILD_AND_TEST freezes the package", () => {
    const s = inPhase(ReleasePhase.BUILD_AND_TEST);
    s.run({ kind: "attachArtifact", artifact: artifact("art-1") });
    s.completeRequiredTasks();
    const events = s.run(advance);
    expect(types(events).slice(0, 2)).toEqual(["ReleasePackageFrozen", "ReleasePhaseAdvanced"]);
    expect(s.release.packageFrozen).toBe(true);
    expect(s.refusal({ kind: "attachArtifact", artifact: artifact("art-2") }).rule).toBe("package.frozen");
    expect(s.refusal({ kind: "detachArtifact", artifactId: "art-1" }).rule).toBe("package.frozen");
  });

  test("the step into CLOSED is CloseRelease, not an advance", () => {
    const s = inPhase(ReleasePhase.REVIEW);
    expect(s.refusal(advance).rule).toBe("phase.close_with_review");
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
    expect(s.refusal({ kind: "reworkRelease", toPhase: ReleasePhase.ASSESSMENT, reason: " " }).rule).toBe(
      "rework.reason_required",
    );
    expect(s.refusal({ kind: "reworkRelease", toPhase: ReleasePhase.PLANNING, reason: "again" }).rule).toBe(
      "rework.earlier_phase",
    );
    expect(s.refusal({ kind: "reworkRelease", toPhase: ReleasePhase.DEPLOYMENT, reason: "again" }).rule).toBe(
      "rework.earlier_phase",
    );
  });

  test("refuses a phase the model does not have", () => {
    const s = new Scenario();
    s.run(register({}, EMERGENCY_MODEL));
    s.advance();
    s.advance();
    expect(s.refusal({ kind: "reworkRelease", toPhase: ReleasePhase.ASSESSMENT, reason: "x y" }).rule).toBe(
      "rework.phase_in_model",
    );
  });

  test("goes back with a new phase entry: fresh tasks, and earlier approvals no longer count", () => {
    const s = inPhase(ReleasePhase.BUILD_AND_TEST);
    const events = s.run({ kind: "reworkRelease", toPhase: ReleasePhase.APPROVAL, reason: "scope changed" });
    expect(events[0]).toMatchObject({
      fromPhase: ReleasePhase.BUILD_AND_TEST,
      toPhase: ReleasePhase.APPROVAL,
      reason: "scope changed",
    });
    expect(s.release.phase).toBe(ReleasePhase.APPROVAL);
    expect(s.refusal(advance).conditions.map((c) => c.rule)).toEqual(["gate.approval_requested"]);
  });

  test("going back to BUILD_AND_TEST reopens a frozen package", () => {
    const s = inPhase(ReleasePhase.DEPLOYMENT);
    expect(s.release.packageFrozen).toBe(true);
    s.run({ kind: "reworkRelease", toPhase: ReleasePhase.BUILD_AND_TEST, reason: "rebuild needed" });
    expect(s.release.packageFrozen).toBe(false);
    s.run({ kind: "attachArtifact", artifact: artifact("art-9") });
  });
});

describe("AbandonRelease", () => {
  test("needs a reason, then the release accepts no further command", () => {
    const s = registered();
    expect(s.refusal({ kind: "abandonRelease", reason: "" }).rule).toBe("abandon.reason_required");
    s.run({ kind: "abandonRelease", reason: "superseded by 4.3" });
    expect(s.release).toMatchObject({ status: ReleaseStatus.ABANDONED, abandonReason: "superseded by 4.3" });
    for (const command of [advance, { kind: "abandonRelease", reason: "again" } as ReleaseCommand])
      expect(s.refusal(command).rule).toBe("release.active");
  });
});

describe("CloseRelease", () => {
  test("only from the phase before CLOSED", () => {
    expect(inPhase(ReleasePhase.VERIFICATION).refusal({ kind: "closeRelease", changes: [] }).rule).toBe(
      "close.from_last_phase",
    );
  });

  test("requires the post-implementation review, then closes", () => {
    const s = inPhase(ReleasePhase.REVIEW);
    expect(s.refusal({ kind: "closeRelease", changes: [] }).rule).toBe("close.review_required");
    s.run(
      {
        kind: "recordReview",
        outcome: ReviewOutcome.PARTIALLY_SUCCESSFUL,
        lessonsLearned: "canary earlier",
        followUpActions: ["add canary"],
      },
      "olivia",
    );
    expect(s.release.review).toMatchObject({ outcome: ReviewOutcome.PARTIALLY_SUCCESSFUL, reviewedBy: "olivia" });
    const events = s.run({ kind: "closeRelease", changes: [] });
    expect(types(events)).toEqual(["ReleaseClosed", "ReleaseNotificationRequested"]);
    expect(s.release).toMatchObject({ phase: ReleasePhase.CLOSED, status: ReleaseStatus.CLOSED });
    expect(s.refusal({ kind: "setBackOutPlan", backOutPlan: "x" }).rule).toBe("release.active");
  });

  test("a rework discards the review: after the redeployment the release is reviewed again", () => {
    const s = inPhase(ReleasePhase.REVIEW);
    s.run({ kind: "recordReview", outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "", followUpActions: [] });
    s.run({ kind: "reworkRelease", toPhase: ReleasePhase.DEPLOYMENT, reason: "rollout broke checkout" });
    expect(s.release.review).toBeUndefined();
    while (s.release.phase !== ReleasePhase.REVIEW) s.advance();
    expect(s.refusal({ kind: "closeRelease", changes: [] }).rule).toBe("close.review_required");
    s.run({ kind: "recordReview", outcome: ReviewOutcome.BACKED_OUT, lessonsLearned: "", followUpActions: [] });
    const [closed] = s.run({ kind: "closeRelease", changes: [] });
    expect(closed).toMatchObject({ outcome: ReviewOutcome.BACKED_OUT });
  });

  test("the review can only be recorded in the phase before CLOSED", () => {
    expect(
      inPhase(ReleasePhase.DEPLOYMENT).refusal({
        kind: "recordReview",
        outcome: ReviewOutcome.FAILED,
        lessonsLearned: "",
        followUpActions: [],
      }).rule,
    ).toBe("review.in_review_phase");
  });
});

describe("Approvals", () => {
  const inApproval = () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    s.run({ kind: "requestApproval", approvalId: "a1", approverGroup: "cab" }, "carl");
    return s;
  };
  const approve = (approvalId = "a1"): ReleaseCommand => ({ kind: "approveRelease", approvalId, comment: "lgtm" });
  const reject = (approvalId = "a1"): ReleaseCommand => ({ kind: "rejectRelease", approvalId, reason: "too risky" });
  // CAB members: the standard model's APPROVAL names no members, so the groups claim decides.
  const ann = member("ann", "cab");
  const ben = member("ben", "cab");

  test("only groups the phase requires can be asked", () => {
    expect(
      inPhase(ReleasePhase.APPROVAL).refusal({ kind: "requestApproval", approvalId: "x", approverGroup: "ecab" }).rule,
    ).toBe("approval.required_by_phase");
    expect(registered().refusal({ kind: "requestApproval", approvalId: "x", approverGroup: "cab" }).rule).toBe(
      "approval.required_by_phase",
    );
  });

  test("a second request while one is pending is refused", () => {
    expect(inApproval().refusal({ kind: "requestApproval", approvalId: "a2", approverGroup: "cab" }).rule).toBe(
      "approval.not_pending",
    );
  });

  test("separation of duties: owner, coordinator, registrar and requester cannot approve", () => {
    const s = inApproval();
    // Sitting on the board does not let them decide on their own release.
    for (const actor of ["olivia", "carl", "rita"]) {
      const refusal = s.refusal(approve(), member(actor, "cab"));
      expect([refusal.rule, refusal.code]).toEqual(["approval.separation_of_duties", "PERMISSION_DENIED"]);
    }
    const rejection = s.refusal({ kind: "rejectRelease", approvalId: "a1", reason: "no" }, member("olivia", "cab"));
    expect([rejection.rule, rejection.code]).toEqual(["approval.separation_of_duties", "PERMISSION_DENIED"]);
  });

  test("separation of duties holds across coordinator changes while the approval is pending", () => {
    const s = inApproval();
    const planning = (coordinator: string): ReleaseCommand => ({
      kind: "updatePlanning",
      title: s.release.title,
      description: s.release.description,
      category: s.release.category,
      coordinator,
      stakeholders: s.release.stakeholders,
      risk: s.release.risk,
      plannedWindow: s.release.plannedWindow,
    });
    // Ann coordinates for a moment, hands back, then tries to vote: refused.
    s.run(planning("ann"));
    s.run(planning("carl"));
    const refusal = s.refusal(approve(), ann);
    expect([refusal.rule, refusal.code]).toEqual(["approval.separation_of_duties", "PERMISSION_DENIED"]);
    expect(s.release.approvals[0]?.ineligibleApprovers).toEqual(["olivia", "carl", "rita", "ann"]);
    // Ben never coordinated: his vote counts.
    expect(s.run(approve(), ben)[0]).toMatchObject({ approver: "ben" });
  });

  test("quorum: the second distinct approval grants it and says so", () => {
    const s = inApproval();
    const [first] = s.run(approve(), ann);
    expect(first).toMatchObject({ quorumReached: false });
    expect(s.refusal(approve(), ann).rule).toBe("approval.one_vote_per_approver");
    const events = s.run(approve(), ben);
    expect(events[0]).toMatchObject({ quorumReached: true });
    expect(types(events)).toEqual(["ReleaseApprovalGranted", "ReleaseNotificationRequested"]);
    expect(events[1]).toMatchObject({ recipients: ["olivia", "carl"] });
    expect(s.release.approvals[0]?.status).toBe(ApprovalStatus.APPROVED);
    expect(s.refusal(approve(), member("cid", "cab")).rule).toBe("approval.pending");
  });

  test("a rejection needs a reason and blocks until a new request", () => {
    const s = inApproval();
    expect(s.refusal({ kind: "rejectRelease", approvalId: "a1", reason: " " }, ann).rule).toBe(
      "approval.reason_required",
    );
    s.run({ kind: "rejectRelease", approvalId: "a1", reason: "no back-out plan" }, ann);
    expect(s.release.approvals[0]?.status).toBe(ApprovalStatus.REJECTED);
    expect(s.refusal(approve(), ben).rule).toBe("approval.pending");
    s.run({ kind: "requestApproval", approvalId: "a2", approverGroup: "cab" }, "carl");
    s.run(approve("a2"), ann);
    s.run(approve("a2"), ben);
    s.run(advance);
    expect(s.release.phase).toBe(ReleasePhase.BUILD_AND_TEST);
  });

  test("unknown approvals and approvals of a left phase are refused", () => {
    const s = inApproval();
    expect(s.refusal(approve("nope"), ann)).toMatchObject({ rule: "approval.exists", code: "NOT_FOUND" });
    s.run({ kind: "reworkRelease", toPhase: ReleasePhase.PLANNING, reason: "replan" });
    expect(s.refusal(approve(), ann).rule).toBe("approval.current_phase");
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
    const s = new Scenario();
    s.run(register({}, model));
    s.run({ kind: "requestApproval", approvalId: "a1", approverGroup: "board" }, "carl");
    for (const command of [approve(), reject()])
      expect(s.refusal(command, member("ben", "board"))).toMatchObject({
        rule: "approval.group_member",
        code: "PERMISSION_DENIED",
        subject: "board",
      });
    // ann's token carries no groups at all: the model's list decides alone.
    s.run(approve(), "ann");
    expect(s.release.approvals[0]?.status).toBe(ApprovalStatus.APPROVED);
  });

  test("without named members, only callers whose token carries the group may vote", () => {
    const s = inApproval();
    for (const caller of ["dora", member("dora", "ecab"), member("dora", "CAB", "cab-observers")])
      for (const command of [approve(), reject()]) {
        const refusal = s.refusal(command, caller);
        expect(refusal).toMatchObject({ rule: "approval.group_member", code: "PERMISSION_DENIED", subject: "cab" });
        expect(refusal.message).toContain("cab");
      }
    const [granted] = s.run(approve(), member("dora", "ecab", "cab"));
    expect(granted).toMatchObject({ approver: "dora", quorumReached: false });
    s.run(reject(), ben);
    expect(s.release.approvals[0]?.votes.map((v) => [v.approver, v.approved])).toEqual([
      ["dora", true],
      ["ben", false],
    ]);
  });

  test("an approval request notifies the group", () => {
    const s = inPhase(ReleasePhase.APPROVAL);
    const events = s.run({ kind: "requestApproval", approvalId: "a9", approverGroup: "cab" }, "carl");
    expect(events[1]).toMatchObject({ recipients: ["group:cab"], trigger: "rdm.release.v1.ReleaseApprovalRequested" });
  });
});

describe("Tasks", () => {
  const withTask = (required = false) => {
    const s = registered();
    s.run({
      kind: "addTask",
      taskId: "t1",
      name: "Smoke test",
      required,
      assignee: "",
      dueAt: new Date(T0.getTime() + HOUR),
    });
    return s;
  };
  const task = (s: Scenario) => s.release.tasks.find((t) => t.taskId === "t1");

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
    s.run({ kind: "assignTask", taskId: "t1", assignee: "dev" });
    s.run({ kind: "startTask", taskId: "t1" });
    expect(s.refusal({ kind: "startTask", taskId: "t1" }).rule).toBe("task.startable");
    s.run({ kind: "completeTask", taskId: "t1" });
    expect(task(s)).toMatchObject({ assignee: "dev", status: TaskStatus.DONE });
    expect(s.refusal({ kind: "completeTask", taskId: "t1" }).rule).toBe("task.open");
    expect(s.refusal({ kind: "assignTask", taskId: "t1", assignee: "x" }).rule).toBe("task.open");
  });

  test("optional tasks can be cancelled with a reason, required ones cannot", () => {
    const s = withTask();
    expect(s.refusal({ kind: "cancelTask", taskId: "t1", reason: "" }).rule).toBe("task.reason_required");
    s.run({ kind: "cancelTask", taskId: "t1", reason: "not needed" });
    expect(task(s)?.status).toBe(TaskStatus.CANCELLED);
    expect(withTask(true).refusal({ kind: "cancelTask", taskId: "t1", reason: "not needed" }).rule).toBe(
      "task.required_not_cancellable",
    );
  });

  test("unknown tasks and tasks of a phase already left are refused", () => {
    const s = withTask();
    expect(s.refusal({ kind: "startTask", taskId: "zz" })).toMatchObject({ rule: "task.exists", code: "NOT_FOUND" });
    s.completeRequiredTasks();
    s.run(advance);
    expect(s.refusal({ kind: "completeTask", taskId: "t1" }).rule).toBe("task.current_phase");
  });
});

describe("Package, change links, back-out plan and log", () => {
  test("artifacts attach once per id and per name, and detach", () => {
    const s = registered();
    s.run({ kind: "attachArtifact", artifact: artifact("art-1", "payments-api") });
    expect(s.refusal({ kind: "attachArtifact", artifact: artifact("art-1", "other") })).toMatchObject({
      rule: "package.artifact_unique",
      code: "ALREADY_EXISTS",
    });
    expect(s.refusal({ kind: "attachArtifact", artifact: artifact("art-2", "payments-api") }).rule).toBe(
      "package.one_version_per_artifact",
    );
    expect(s.release.package[0]).toMatchObject({ artifactId: "art-1", configurationItemId: "ci-payments" });
    s.run({ kind: "detachArtifact", artifactId: "art-1" });
    expect(s.release.package).toHaveLength(0);
    expect(s.refusal({ kind: "detachArtifact", artifactId: "art-1" }).code).toBe("NOT_FOUND");
  });

  test("change requests link once and unlink", () => {
    const s = registered();
    s.run({ kind: "linkChangeRequest", changeRequestId: "chg-1" });
    expect(s.refusal({ kind: "linkChangeRequest", changeRequestId: "chg-1" }).code).toBe("ALREADY_EXISTS");
    s.run({ kind: "unlinkChangeRequest", changeRequestId: "chg-1" });
    expect(s.release.linkedChangeRequestIds).toEqual([]);
    expect(s.refusal({ kind: "unlinkChangeRequest", changeRequestId: "chg-1" }).code).toBe("NOT_FOUND");
  });

  test("back-out plan and deviations / risks / issues log", () => {
    const s = registered();
    s.run({ kind: "setBackOutPlan", backOutPlan: "redeploy 4.1" });
    s.run({ kind: "recordLogEntry", entryId: "e1", entryKind: LogEntryKind.RISK, text: "db migration" }, "carl");
    s.run({ kind: "recordLogEntry", entryId: "e2", entryKind: LogEntryKind.DEVIATION, text: "late start" }, "carl");
    expect(s.release.backOutPlan).toBe("redeploy 4.1");
    expect(s.release.log.map((e) => [e.kind, e.text, e.recordedBy])).toEqual([
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
    expect(s.refusal({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due - 1)).rule).toBe(
      "deadline.passed",
    );
    const events = s.run({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due));
    expect(types(events)).toEqual(["ReleaseDeadlineMissed", "ReleaseNotificationRequested"]);
    expect(events[1]).toMatchObject({ recipients: ["olivia", "carl"] });
    expect(s.refusal({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due + 1)).rule).toBe(
      "deadline.missed_once",
    );
  });

  test("a phase left in time has no missed deadline", () => {
    const s = registered();
    s.advance();
    expect(s.refusal({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due + DAY)).rule).toBe(
      "deadline.phase_current",
    );
  });

  test("escalation comes once, after the grace period, and only for a reported miss", () => {
    const s = registered();
    expect(s.refusal({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + 2 * DAY)).rule).toBe(
      "deadline.missed_first",
    );
    s.run({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due));
    expect(s.refusal({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + DAY - 1)).rule).toBe(
      "deadline.grace_passed",
    );
    const events = s.run({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + DAY));
    expect(types(events)).toEqual(["ReleaseDeadlineEscalated", "ReleaseNotificationRequested"]);
    expect(events[1]).toMatchObject({ recipients: ["olivia", "carl", "role:release-manager"] });
    expect(s.release.deadlineMisses[0]).toMatchObject({ phase: ReleasePhase.REGISTRATION, escalated: true });
    expect(s.refusal({ kind: "escalateDeadline", phaseEntry: 1 }, "system", at(due + 2 * DAY)).rule).toBe(
      "deadline.escalated_once",
    );
  });

  test("a phase without a deadline never misses it", () => {
    const model = create(ReleaseModelSchema, {
      name: "nodeadline",
      version: 1,
      phases: [{ phase: ReleasePhase.REGISTRATION }, { phase: ReleasePhase.CLOSED }],
    });
    const s = new Scenario();
    s.run(register({}, model));
    expect(s.release.phaseDueAt).toBeUndefined();
    expect(s.refusal({ kind: "markDeadlineMissed", phaseEntry: 1 }, "system", at(due)).rule).toBe("deadline.exists");
  });
});

describe("Default models", () => {
  test("the standard model walks every phase from registration to close", () => {
    const s = registered();
    const seen = [s.release.phase];
    while (s.release.phase !== ReleasePhase.REVIEW) {
      s.advance();
      seen.push(s.release.phase);
    }
    s.run({ kind: "recordReview", outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "", followUpActions: [] });
    s.run({ kind: "closeRelease", changes: [] });
    seen.push(s.release.phase);
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
    const s = new Scenario();
    s.run(register({ type: 3 }, EMERGENCY_MODEL));
    s.run(advance);
    expect(s.release.phase).toBe(ReleasePhase.APPROVAL);
    expect(s.refusal(advance).conditions.map((c) => c.subject)).toEqual(["ecab"]);
    s.run({ kind: "requestApproval", approvalId: "e1", approverGroup: "ecab" }, "carl");
    expect(s.refusal({ kind: "approveRelease", approvalId: "e1", comment: "go" }, member("ann", "cab")).rule).toBe(
      "approval.group_member",
    );
    s.run({ kind: "approveRelease", approvalId: "e1", comment: "go" }, member("ann", "ecab"));
    s.run(advance);
    expect(s.release.phase).toBe(ReleasePhase.BUILD_AND_TEST);
    expect(time(s.release.phaseDueAt)).toBe(T0.getTime() + 8 * HOUR);
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
  ])("%s", (expected, phases) => {
    expect(rule(model(phases))).toBe(expected);
  });
});
