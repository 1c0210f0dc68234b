import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
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
  type FreezeWindow,
  FreezeWindowSchema,
  StandardChangeTemplateSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { EventMetadataSchema, type TimeWindow, TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { deciderSpec } from "@rdm/testkit";
import {
  type ChangeRequestCommand,
  type ChangeRequestEvent,
  DEFAULT_BOARD_GROUPS,
  decide,
  evolve,
  fold,
  initialState,
  type RaiseChange,
  type ScheduleChange,
} from "../src/domain/change-request.js";
import { riskOf } from "../src/domain/risk.js";

const CHANGE_ID = "0b5e8c1e-6f0a-4d8e-9d54-6c1f2a3b4c5d";
const TEMPLATE_ID = "5a0c3a2e-1111-4f6e-8a7b-9c0d1e2f3a4b";
const RELEASE_ID = "9f8e7d6c-2222-4b3a-8c9d-0e1f2a3b4c5d";

const at = (iso: string) => timestampFromDate(new Date(iso));
const window = (start: string, end: string): TimeWindow => create(TimeWindowSchema, { start: at(start), end: at(end) });

const raiseNormal: RaiseChange = {
  kind: "raiseChange",
  changeRequestId: CHANGE_ID,
  key: "CHG-2026-0001",
  requester: "rita",
  type: ChangeType.NORMAL,
  title: "Upgrade payments database",
  description: "PostgreSQL 16 -> 18",
  justification: "end of support",
  affectedCiIds: ["ci-payments-db", "ci-payments-api"],
  environments: ["production"],
  implementationPlan: "pg_upgrade",
  testPlan: "smoke tests",
  backoutPlan: "restore the snapshot",
  impact: ChangeImpact.UNSPECIFIED,
  urgency: ChangeUrgency.UNSPECIFIED,
  plannedWindow: undefined,
  firstCommitTime: undefined,
  linkedReleaseId: RELEASE_ID,
  templateId: "",
};

const template = create(StandardChangeTemplateSchema, {
  templateId: TEMPLATE_ID,
  name: "Rotate TLS certificate",
  implementationPlan: "rotate with cert-manager",
  testPlan: "curl -v",
  backoutPlan: "restore previous secret",
  risk: ChangeRisk.LOW,
});

const raiseStandard: RaiseChange = {
  ...raiseNormal,
  type: ChangeType.STANDARD,
  justification: "",
  implementationPlan: "",
  testPlan: "",
  backoutPlan: "",
  templateId: TEMPLATE_ID,
  template,
};

const raiseEmergency: RaiseChange = { ...raiseNormal, type: ChangeType.EMERGENCY };

const submit: ChangeRequestCommand = { kind: "submitChange", actor: "rita" };
const assess = (
  impact = ChangeImpact.MEDIUM,
  urgency = ChangeUrgency.LOW,
  requiredApprovals = 0,
): ChangeRequestCommand => ({
  kind: "assessChange",
  impact,
  urgency,
  requiredApprovals,
  notes: "checked",
});
/** A vote by `approver` whose token carries `groups` (by default the CAB's). */
const vote = (approver: string, groups: string[]) => ({
  approver,
  approverGroups: groups,
  boardGroups: DEFAULT_BOARD_GROUPS,
});
const approve = (approver: string, groups = ["cab"]): ChangeRequestCommand => ({
  kind: "approveChange",
  ...vote(approver, groups),
  comment: "ok",
});
const reject = (approver: string, groups = ["cab"]): ChangeRequestCommand => ({
  kind: "rejectChange",
  ...vote(approver, groups),
  reason: "too risky",
});
const june = window("2026-06-10T20:00:00Z", "2026-06-10T22:00:00Z");
const schedule = (overrides: Partial<ScheduleChange> = {}): ScheduleChange => ({
  kind: "scheduleChange",
  window: june,
  strict: false,
  freezeOverrideJustification: "",
  freezes: [],
  otherChanges: [],
  ...overrides,
});

/** Runs commands in order from nothing, stamping metadata as the API would, and returns the events. */
function history(...commands: ChangeRequestCommand[]): ChangeRequestEvent[] {
  const events: ChangeRequestEvent[] = [];
  for (const command of commands) {
    for (const event of decide(command, fold(events))) {
      event.metadata = create(EventMetadataSchema, {
        streamVersion: BigInt(events.length + 1),
        occurredAt: at("2026-06-01T10:00:00Z"),
        actor: "someone",
      });
      events.push(event);
    }
  }
  return events;
}

const spec = deciderSpec({ decide, evolve, initialState });
const given = (...events: ChangeRequestEvent[]) => spec.given(events);
const noChange = (): never => {
  throw new Error("no change after the events");
};

const types = (events: ChangeRequestEvent[]) => events.map((event) => event.$typeName.replace("rdm.change.v1.", ""));

const freeze = (overrides: MessageInitShape<typeof FreezeWindowSchema> = {}): FreezeWindow =>
  create(FreezeWindowSchema, {
    freezeWindowId: "f-1",
    name: "Summer sale",
    window: window("2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"),
    scope: { all: true },
    ...overrides,
  } as MessageInitShape<typeof FreezeWindowSchema>);

const other = (overrides: MessageInitShape<typeof ChangeRequestSchema> = {}): ChangeRequest =>
  create(ChangeRequestSchema, {
    changeRequestId: "other-1",
    key: "CHG-2026-0099",
    state: ChangeState.SCHEDULED,
    affectedCiIds: ["ci-payments-db", "ci-other"],
    plannedWindow: window("2026-06-10T21:00:00Z", "2026-06-10T23:00:00Z"),
    ...overrides,
  });

const submitted = () => history(raiseNormal, submit);
const assessed = (required = 2) =>
  history(raiseNormal, submit, assess(ChangeImpact.MEDIUM, ChangeUrgency.LOW, required));
const authorized = () => history(raiseNormal, submit, assess(ChangeImpact.LOW, ChangeUrgency.LOW, 1), approve("anna"));
const scheduled = () => authorized().concat(decideOn(authorized(), schedule()));
function decideOn(events: ChangeRequestEvent[], command: ChangeRequestCommand) {
  return decide(command, fold(events)).map((event, index) => {
    event.metadata = create(EventMetadataSchema, { streamVersion: BigInt(events.length + index + 1) });
    return event;
  });
}
const implementing = () => {
  const events = scheduled();
  return events.concat(decideOn(events, { kind: "startImplementation" }));
};
const implemented = () => {
  const events = implementing();
  return events.concat(decideOn(events, { kind: "completeImplementation" }));
};
const reviewed = () => {
  const events = implemented();
  return events.concat(decideOn(events, { kind: "reviewChange", outcome: ChangeReviewOutcome.SUCCESSFUL, notes: "" }));
};

describe("risk from impact x urgency", () => {
  test.each([
    [ChangeImpact.LOW, ChangeUrgency.LOW, ChangeRisk.LOW],
    [ChangeImpact.LOW, ChangeUrgency.MEDIUM, ChangeRisk.LOW],
    [ChangeImpact.MEDIUM, ChangeUrgency.LOW, ChangeRisk.LOW],
    [ChangeImpact.LOW, ChangeUrgency.HIGH, ChangeRisk.MEDIUM],
    [ChangeImpact.MEDIUM, ChangeUrgency.MEDIUM, ChangeRisk.MEDIUM],
    [ChangeImpact.HIGH, ChangeUrgency.LOW, ChangeRisk.MEDIUM],
    [ChangeImpact.MEDIUM, ChangeUrgency.HIGH, ChangeRisk.HIGH],
    [ChangeImpact.HIGH, ChangeUrgency.MEDIUM, ChangeRisk.HIGH],
    [ChangeImpact.HIGH, ChangeUrgency.HIGH, ChangeRisk.CRITICAL],
    [ChangeImpact.UNSPECIFIED, ChangeUrgency.HIGH, ChangeRisk.UNSPECIFIED],
  ])("impact %s x urgency %s -> risk %s", (impact, urgency, risk) => {
    expect(riskOf(impact, urgency)).toBe(risk);
  });
});

describe("RaiseChange", () => {
  test("a normal change starts as DRAFT with the requester, the linked release and the CAB", () => {
    given()
      .when({ ...raiseNormal, impact: ChangeImpact.HIGH, urgency: ChangeUrgency.HIGH })
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestRaised"]);
        expect(events[0]).toMatchObject({
          changeRequestId: CHANGE_ID,
          linkedReleaseId: RELEASE_ID,
          state: ChangeState.DRAFT,
        });
        expect(change).toMatchObject({
          state: ChangeState.DRAFT,
          requester: "rita",
          risk: ChangeRisk.CRITICAL,
          board: ChangeBoard.CAB,
          key: "CHG-2026-0001",
        });
      });
  });

  test("an emergency change is for the ECAB", () => {
    given()
      .when(raiseEmergency)
      .then((_, { change = noChange() }) => expect(change.board).toBe(ChangeBoard.ECAB));
  });

  test("a standard change takes its plans and risk from the template", () => {
    given()
      .when(raiseStandard)
      .then((_, { change = noChange() }) => {
        expect(change).toMatchObject({
          type: ChangeType.STANDARD,
          templateId: TEMPLATE_ID,
          implementationPlan: "rotate with cert-manager",
          backoutPlan: "restore previous secret",
          risk: ChangeRisk.LOW,
          board: ChangeBoard.PRE_AUTHORIZED,
        });
      });
  });

  test("a standard change keeps plans given explicitly", () => {
    given()
      .when({ ...raiseStandard, backoutPlan: "roll back by hand" })
      .then((_, { change = noChange() }) => expect(change.backoutPlan).toBe("roll back by hand"));
  });

  test("refuses a standard change whose template is not in the catalog", () => {
    given()
      .when({ ...raiseStandard, template: undefined })
      .thenFails("standard_change.template_exists", "FAILED_PRECONDITION");
  });

  test("refuses a standard change from a retired template", () => {
    given()
      .when({ ...raiseStandard, template: create(StandardChangeTemplateSchema, { ...template, retired: true }) })
      .thenFails("standard_change.template_active", "FAILED_PRECONDITION");
  });

  test("records the first commit time given", () => {
    given()
      .when({ ...raiseNormal, firstCommitTime: at("2026-05-30T08:00:00Z") })
      .then((events, { change = noChange() }) => {
        expect(events[0]).toMatchObject({ firstCommitTime: at("2026-05-30T08:00:00Z") });
        expect(change.firstCommitTime).toEqual(at("2026-05-30T08:00:00Z"));
      });
  });

  test("refuses to raise the same change twice", () => {
    given(...history(raiseNormal))
      .when(raiseNormal)
      .thenFails("change.unique_id", "ALREADY_EXISTS");
  });
});

describe("UpdateChange", () => {
  const edit = (overrides: Partial<ChangeRequestCommand> = {}): ChangeRequestCommand =>
    ({
      kind: "updateChange",
      title: "Upgrade payments database to 18",
      description: "",
      justification: "end of support in March",
      affectedCiIds: ["ci-payments-db"],
      environments: ["production", "staging"],
      implementationPlan: "pg_upgrade --link",
      testPlan: "",
      backoutPlan: "restore the snapshot",
      impact: ChangeImpact.HIGH,
      urgency: ChangeUrgency.MEDIUM,
      plannedWindow: june,
      firstCommitTime: at("2026-05-28T09:00:00Z"),
      ...overrides,
    }) as ChangeRequestCommand;

  test("replaces the editable fields of a draft and recomputes the risk", () => {
    given(...history(raiseNormal))
      .when(edit())
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestDetailsUpdated"]);
        expect(change).toMatchObject({
          state: ChangeState.DRAFT,
          title: "Upgrade payments database to 18",
          affectedCiIds: ["ci-payments-db"],
          environments: ["production", "staging"],
          implementationPlan: "pg_upgrade --link",
          testPlan: "",
          risk: ChangeRisk.HIGH,
          requester: "rita",
          key: "CHG-2026-0001",
        });
        expect(change.plannedWindow).toEqual(june);
      });
  });

  test("keeps the first commit time, and an edit without one clears it", () => {
    const withCommit = history(raiseNormal, edit());
    expect(fold(withCommit).change?.firstCommitTime).toEqual(at("2026-05-28T09:00:00Z"));
    given(...withCommit)
      .when(edit({ firstCommitTime: undefined } as Partial<ChangeRequestCommand>))
      .then((events, { change = noChange() }) => {
        expect(events[0]?.$typeName === "rdm.change.v1.ChangeRequestDetailsUpdated" && events[0].firstCommitTime).toBe(
          undefined,
        );
        expect(change.firstCommitTime).toBeUndefined();
      });
  });

  test("clearing the planned window removes it", () => {
    const withWindow = history(raiseNormal, edit());
    given(...withWindow)
      .when(edit({ plannedWindow: undefined } as Partial<ChangeRequestCommand>))
      .then((_, { change = noChange() }) => expect(change.plannedWindow).toBeUndefined());
  });

  test("refuses to edit a submitted change", () => {
    given(...submitted())
      .when(edit())
      .thenFails("change.update.state", "FAILED_PRECONDITION");
  });

  test("a standard change keeps its template's plans and risk", () => {
    given(...history(raiseStandard))
      .when(
        edit({
          implementationPlan: "",
          testPlan: "",
          backoutPlan: "restore previous secret",
        } as Partial<ChangeRequestCommand>),
      )
      .then((_, { change = noChange() }) =>
        expect(change).toMatchObject({
          implementationPlan: "rotate with cert-manager",
          backoutPlan: "restore previous secret",
          risk: ChangeRisk.LOW,
        }),
      );
  });

  test("refuses other plans for a standard change", () => {
    given(...history(raiseStandard))
      .when(edit())
      .thenFails("change.update.standard_plans_fixed", "FAILED_PRECONDITION");
  });
});

describe("SubmitChange", () => {
  test("a complete normal change goes to SUBMITTED", () => {
    given(...history(raiseNormal))
      .when(submit)
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestSubmitted"]);
        expect(change.state).toBe(ChangeState.SUBMITTED);
      });
  });

  test("a standard change skips the CAB: submitted, assessed and authorized by its template", () => {
    given(...history(raiseStandard))
      .when({ ...submit, template })
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestSubmitted", "ChangeRequestAssessed", "ChangeRequestAuthorized"]);
        expect(events.map((e) => e.state)).toEqual([
          ChangeState.SUBMITTED,
          ChangeState.ASSESSED,
          ChangeState.AUTHORIZED,
        ]);
        expect(events[2]).toMatchObject({ board: ChangeBoard.PRE_AUTHORIZED, templateId: TEMPLATE_ID, approvers: [] });
        expect(change).toMatchObject({ state: ChangeState.AUTHORIZED, requiredApprovals: 0, approvals: [] });
      });
  });

  test("a standard change whose template was retired since, or is gone, is refused: no pre-authorization", () => {
    for (const gone of [create(StandardChangeTemplateSchema, { ...template, retired: true }), undefined]) {
      given(...history(raiseStandard))
        .when({ ...submit, template: gone })
        .thenFails("standard_change.template_active", "FAILED_PRECONDITION");
    }
  });

  test("refuses an incomplete change, naming every missing field", () => {
    const error = given(
      ...history({ ...raiseNormal, justification: " ", affectedCiIds: [], implementationPlan: "", backoutPlan: "" }),
    )
      .when(submit)
      .thenFails("change.submit.complete", "FAILED_PRECONDITION");
    expect(error.conditions.map((d) => d.rule)).toEqual([
      "change.submit.justification_required",
      "change.submit.affected_ci_ids_required",
      "change.submit.implementation_plan_required",
      "change.submit.backout_plan_required",
    ]);
  });

  test("refuses to submit twice", () => {
    given(...submitted())
      .when(submit)
      .thenFails("change.submit.state", "FAILED_PRECONDITION");
  });

  test("refuses a command on a change that does not exist", () => {
    given().when(submit).thenFails("change.exists", "NOT_FOUND");
  });
});

describe("AssessChange", () => {
  test("derives the risk and the default CAB quorum from impact x urgency", () => {
    given(...submitted())
      .when(assess(ChangeImpact.HIGH, ChangeUrgency.MEDIUM))
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestAssessed"]);
        expect(change).toMatchObject({
          state: ChangeState.ASSESSED,
          risk: ChangeRisk.HIGH,
          board: ChangeBoard.CAB,
          requiredApprovals: 3,
          assessmentNotes: "checked",
        });
      });
  });

  test.each([
    [ChangeImpact.LOW, ChangeUrgency.LOW, 1],
    [ChangeImpact.MEDIUM, ChangeUrgency.MEDIUM, 2],
    [ChangeImpact.HIGH, ChangeUrgency.HIGH, 3],
  ])("CAB default quorum for impact %s, urgency %s is %s", (impact, urgency, quorum) => {
    given(...submitted())
      .when(assess(impact, urgency))
      .then((_, { change = noChange() }) => expect(change.requiredApprovals).toBe(quorum));
  });

  test("an explicit quorum wins over the default", () => {
    given(...submitted())
      .when(assess(ChangeImpact.LOW, ChangeUrgency.LOW, 4))
      .then((_, { change = noChange() }) => expect(change.requiredApprovals).toBe(4));
  });

  test("an emergency change goes to the ECAB with a quorum of one", () => {
    given(...history(raiseEmergency, submit))
      .when(assess(ChangeImpact.HIGH, ChangeUrgency.HIGH))
      .then((_, { change = noChange() }) =>
        expect(change).toMatchObject({ board: ChangeBoard.ECAB, requiredApprovals: 1 }),
      );
  });

  test("refuses to assess a draft", () => {
    given(...history(raiseNormal))
      .when(assess())
      .thenFails("change.assess.state", "FAILED_PRECONDITION");
  });
});

describe("CAB approvals", () => {
  test("one approval below quorum is recorded; the change stays ASSESSED", () => {
    given(...assessed(2))
      .when(approve("anna"))
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeApprovalRecorded"]);
        expect(change.state).toBe(ChangeState.ASSESSED);
        expect(change.approvals).toMatchObject([{ approver: "anna", decision: ApprovalDecision.APPROVED }]);
      });
  });

  test("the approval reaching quorum authorizes the change, naming the approvers", () => {
    given(...assessed(2), ...decideOn(assessed(2), approve("anna")))
      .when(approve("ben"))
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeApprovalRecorded", "ChangeRequestAuthorized"]);
        expect(events[1]).toMatchObject({
          approvers: ["anna", "ben"],
          board: ChangeBoard.CAB,
          state: ChangeState.AUTHORIZED,
        });
        expect(change.state).toBe(ChangeState.AUTHORIZED);
      });
  });

  test("separation of duties: the requester cannot approve, even on the board", () => {
    given(...assessed())
      .when(approve("rita"))
      .thenFails("change.approval.separation_of_duties", "PERMISSION_DENIED");
  });

  test("separation of duties: the requester cannot reject either", () => {
    given(...assessed())
      .when(reject("rita"))
      .thenFails("change.approval.separation_of_duties", "PERMISSION_DENIED");
  });

  test("a board member votes once", () => {
    given(...assessed(), ...decideOn(assessed(), approve("anna")))
      .when(approve("anna"))
      .thenFails("change.approval.one_vote_per_member", "FAILED_PRECONDITION");
  });

  test("a rejection records the vote and rejects the change with the reason", () => {
    given(...assessed())
      .when(reject("ben"))
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeApprovalRecorded", "ChangeRequestRejected"]);
        expect(change).toMatchObject({ state: ChangeState.REJECTED, rejectionReason: "too risky" });
        expect(change.approvals[0]?.decision).toBe(ApprovalDecision.REJECTED);
      });
  });

  test("refuses approval before assessment", () => {
    given(...submitted())
      .when(approve("anna"))
      .thenFails("change.approve.state", "FAILED_PRECONDITION");
  });

  test("refuses approval of a rejected change", () => {
    const rejected = assessed().concat(decideOn(assessed(), reject("ben")));
    given(...rejected)
      .when(approve("anna"))
      .thenFails("change.approve.state", "FAILED_PRECONDITION");
  });

  test("refuses rejection of an authorized change", () => {
    given(...authorized())
      .when(reject("ben"))
      .thenFails("change.reject.state", "FAILED_PRECONDITION");
  });
});

describe("board membership", () => {
  const emergencyAssessed = () => history(raiseEmergency, submit, assess());

  test.each([
    ["approve", approve("anna", [])],
    ["reject", reject("anna", ["release-board"])],
  ])("an approver outside the CAB cannot %s, and the refusal names the group", (_, command) => {
    const error = given(...assessed())
      .when(command)
      .thenFails("change.approval.board_member", "PERMISSION_DENIED");
    expect(error.conditions).toEqual([
      expect.objectContaining({ rule: "change.approval.board_member", subject: "cab" }),
    ]);
    expect(error.message).toContain('"cab"');
  });

  test("a CAB member's approval is counted", () => {
    given(...assessed(1))
      .when(approve("anna", ["developers", "cab"]))
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeApprovalRecorded", "ChangeRequestAuthorized"]);
        expect(events[1]).toMatchObject({ approvers: ["anna"], board: ChangeBoard.CAB });
        expect(change.state).toBe(ChangeState.AUTHORIZED);
      });
  });

  test("an emergency change needs the ECAB: a CAB member is refused, an ECAB member authorizes", () => {
    const error = given(...emergencyAssessed())
      .when(approve("anna", ["cab"]))
      .thenFails("change.approval.board_member", "PERMISSION_DENIED");
    expect(error.conditions[0]?.subject).toBe("ecab");
    given(...emergencyAssessed())
      .when(approve("erin", ["ecab"]))
      .then((events, { change = noChange() }) => {
        expect(events[1]).toMatchObject({ approvers: ["erin"], board: ChangeBoard.ECAB });
        expect(change.state).toBe(ChangeState.AUTHORIZED);
      });
  });

  test("the board groups are configured, not fixed", () => {
    const boardGroups = { cab: "change-advisory-board", ecab: "ecab" };
    given(...assessed(1))
      .when({ kind: "approveChange", approver: "anna", approverGroups: ["cab"], boardGroups, comment: "" })
      .thenFails("change.approval.board_member", "PERMISSION_DENIED");
    given(...assessed(1))
      .when({ kind: "approveChange", approver: "anna", approverGroups: [boardGroups.cab], boardGroups, comment: "" })
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.AUTHORIZED));
  });

  test("a requester outside the board is refused as a non-member first", () => {
    given(...assessed())
      .when(approve("rita", []))
      .thenFails("change.approval.board_member", "PERMISSION_DENIED");
  });
});

describe("ScheduleChange", () => {
  test("books the window and reports no collisions when the calendar is clear", () => {
    given(...authorized())
      .when(schedule())
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestScheduled"]);
        expect(change).toMatchObject({ state: ChangeState.SCHEDULED, collisions: [], overriddenFreezeIds: [] });
        expect(change.plannedWindow).toEqual(june);
      });
  });

  test("refuses to schedule a change that is not authorized", () => {
    given(...assessed())
      .when(schedule())
      .thenFails("change.schedule.state", "FAILED_PRECONDITION");
  });

  test("refuses an empty window", () => {
    given(...authorized())
      .when(schedule({ window: window("2026-06-10T20:00:00Z", "2026-06-10T20:00:00Z") }))
      .thenFails("change.schedule.window_not_empty", "FAILED_PRECONDITION");
  });

  test("a normal change is refused inside a freeze scoped to all", () => {
    const error = given(...authorized())
      .when(schedule({ freezes: [freeze()] }))
      .thenFails("change.schedule.freeze", "FAILED_PRECONDITION");
    expect(error.conditions).toEqual([
      {
        rule: "change.schedule.freeze",
        subject: "f-1",
        description: 'freeze window "Summer sale" applies to this change',
      },
    ]);
  });

  test("a normal change is refused inside a freeze scoped to one of its CIs", () => {
    given(...authorized())
      .when(schedule({ freezes: [freeze({ scope: { ciIds: ["ci-payments-api"] } })] }))
      .thenFails("change.schedule.freeze", "FAILED_PRECONDITION");
  });

  test("a normal change is refused inside a freeze scoped to its environment", () => {
    given(...authorized())
      .when(schedule({ freezes: [freeze({ scope: { environments: ["production"] } })] }))
      .thenFails("change.schedule.freeze", "FAILED_PRECONDITION");
  });

  test("a change that names no environment may reach any, so an environment-scoped freeze applies to it", () => {
    const anywhere = history(
      { ...raiseNormal, environments: [] },
      submit,
      assess(ChangeImpact.LOW, ChangeUrgency.LOW, 1),
      approve("anna"),
    );
    given(...anywhere)
      .when(schedule({ freezes: [freeze({ scope: { environments: ["production"] } })] }))
      .thenFails("change.schedule.freeze", "FAILED_PRECONDITION");
  });

  test.each([
    ["another CI", { scope: { ciIds: ["ci-unrelated"] } }],
    ["another environment", { scope: { environments: ["staging"] } }],
    ["another time", { window: window("2026-06-11T00:00:00Z", "2026-06-12T00:00:00Z") }],
    ["a window ending when the change starts", { window: window("2026-06-10T10:00:00Z", "2026-06-10T20:00:00Z") }],
    ["a lifted freeze", { lifted: true }],
  ])("a freeze on %s does not apply", (_, overrides) => {
    given(...authorized())
      .when(schedule({ freezes: [freeze(overrides as MessageInitShape<typeof FreezeWindowSchema>)] }))
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.SCHEDULED));
  });

  test("a freeze override justification does not let a normal change into a freeze", () => {
    given(...authorized())
      .when(schedule({ freezes: [freeze()], freezeOverrideJustification: "please" }))
      .thenFails("change.schedule.freeze", "FAILED_PRECONDITION");
  });

  test("an emergency change inside a freeze needs a justification", () => {
    const emergency = history(raiseEmergency, submit, assess(), approve("anna", ["ecab"]));
    given(...emergency)
      .when(schedule({ freezes: [freeze()], freezeOverrideJustification: "  " }))
      .thenFails("change.schedule.freeze_override_justification", "FAILED_PRECONDITION");
  });

  test("an emergency change overrides a freeze, recording the freezes and the justification", () => {
    const emergency = history(raiseEmergency, submit, assess(), approve("anna", ["ecab"]));
    given(...emergency)
      .when(schedule({ freezes: [freeze()], freezeOverrideJustification: "payments outage P1" }))
      .then((events, { change = noChange() }) => {
        expect(events[0]).toMatchObject({
          overriddenFreezeIds: ["f-1"],
          freezeOverrideJustification: "payments outage P1",
        });
        expect(change).toMatchObject({
          state: ChangeState.SCHEDULED,
          overriddenFreezeIds: ["f-1"],
          freezeOverrideJustification: "payments outage P1",
        });
      });
  });

  test("an emergency change outside any freeze records no override", () => {
    const emergency = history(raiseEmergency, submit, assess(), approve("anna", ["ecab"]));
    given(...emergency)
      .when(schedule({ freezeOverrideJustification: "just in case" }))
      .then((_, { change = noChange() }) =>
        expect(change).toMatchObject({ overriddenFreezeIds: [], freezeOverrideJustification: "" }),
      );
  });

  test("reports booked changes touching the same CIs in overlapping windows", () => {
    given(...authorized())
      .when(
        schedule({
          otherChanges: [
            other(),
            other({ changeRequestId: "other-2", key: "CHG-2026-0100", affectedCiIds: ["ci-unrelated"] }),
            other({ changeRequestId: "other-3", key: "CHG-2026-0101", state: ChangeState.AUTHORIZED }),
            other({
              changeRequestId: "other-4",
              key: "CHG-2026-0102",
              plannedWindow: window("2026-06-10T22:00:00Z", "2026-06-10T23:00:00Z"),
            }),
            other({ changeRequestId: CHANGE_ID, key: "CHG-2026-0001" }),
          ],
        }),
      )
      .then((events, { change = noChange() }) => {
        expect(change.state).toBe(ChangeState.SCHEDULED);
        expect(change.collisions).toHaveLength(1);
        expect(change.collisions[0]).toMatchObject({
          changeRequestId: "other-1",
          key: "CHG-2026-0099",
          ciIds: ["ci-payments-db"],
          state: ChangeState.SCHEDULED,
        });
        expect(events[0]).toMatchObject({ collisions: change.collisions });
      });
  });

  test("strict mode refuses a colliding window, naming each collision", () => {
    const error = given(...authorized())
      .when(
        schedule({
          strict: true,
          otherChanges: [
            other(),
            other({ changeRequestId: "other-5", key: "CHG-2026-0098", state: ChangeState.IMPLEMENTING }),
          ],
        }),
      )
      .thenFails("change.schedule.collision", "FAILED_PRECONDITION");
    expect(error.conditions.map((d) => d.subject)).toEqual(["other-5", "other-1"]);
  });

  test("strict mode schedules when nothing collides", () => {
    given(...authorized())
      .when(schedule({ strict: true, otherChanges: [other({ affectedCiIds: ["ci-unrelated"] })] }))
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.SCHEDULED));
  });

  test("a scheduled change can be rescheduled", () => {
    const later = window("2026-06-20T20:00:00Z", "2026-06-20T22:00:00Z");
    given(...scheduled())
      .when(schedule({ window: later }))
      .then((_, { change = noChange() }) => expect(change.plannedWindow).toEqual(later));
  });
});

describe("implementation", () => {
  test("a scheduled change starts implementing", () => {
    given(...scheduled())
      .when({ kind: "startImplementation", deploymentId: "d-1", environment: "production" })
      .then((events, { change = noChange() }) => {
        expect(events[0]).toMatchObject({
          deploymentId: "d-1",
          environment: "production",
          state: ChangeState.IMPLEMENTING,
        });
        expect(change.state).toBe(ChangeState.IMPLEMENTING);
      });
  });

  test("refuses to start an unscheduled change", () => {
    given(...authorized())
      .when({ kind: "startImplementation" })
      .thenFails("change.start_implementation.state", "FAILED_PRECONDITION");
  });

  test("completes an implementing change", () => {
    given(...implementing())
      .when({ kind: "completeImplementation" })
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.IMPLEMENTED));
  });

  test("refuses to complete while a task is open", () => {
    const events = implementing();
    const withTask = events.concat(
      decideOn(events, { kind: "addTask", taskId: "t-1", title: "drain traffic", assignee: "ops" }),
    );
    const error = given(...withTask)
      .when({ kind: "completeImplementation" })
      .thenFails("change.complete_implementation.tasks_done", "FAILED_PRECONDITION");
    expect(error.conditions[0]).toMatchObject({ subject: "t-1" });
  });

  test("a deployment's success with tasks open awaits them: the last one's completion completes the change", () => {
    const add = (events: ChangeRequestEvent[], taskId: string) =>
      events.concat(decideOn(events, { kind: "addTask", taskId, title: taskId, assignee: "ops" }));
    const withTasks = add(add(implementing(), "t-1"), "t-2");
    const success = {
      kind: "completeImplementation",
      deploymentId: "d-7",
      environment: "production",
      awaitOpenTasks: true,
    } as const;
    given(...withTasks)
      .when(success)
      .then((events, { change = noChange() }) => {
        expect(events.map((e) => e.$typeName)).toEqual(["rdm.change.v1.ChangeRequestImplementationAwaitingTasks"]);
        expect(events[0]).toMatchObject({ state: ChangeState.IMPLEMENTING, openTaskIds: ["t-1", "t-2"] });
        expect(change).toMatchObject({ state: ChangeState.IMPLEMENTING, awaitingTasksDeploymentId: "d-7" });
      });
    const awaiting = withTasks.concat(decideOn(withTasks, success));
    // Not the last task: the change still awaits the other; a task added meanwhile is awaited too.
    const first = awaiting.concat(decideOn(awaiting, { kind: "completeTask", taskId: "t-1", by: "olga" }));
    expect(first.at(-1)?.$typeName).toBe("rdm.change.v1.ChangeTaskCompleted");
    const third = add(first, "t-3");
    const second = third.concat(decideOn(third, { kind: "completeTask", taskId: "t-2", by: "olga" }));
    expect(second.at(-1)?.$typeName).toBe("rdm.change.v1.ChangeTaskCompleted");
    given(...second)
      .when({ kind: "completeTask", taskId: "t-3", by: "olga" })
      .then((events, { change = noChange() }) => {
        expect(events.map((e) => e.$typeName)).toEqual([
          "rdm.change.v1.ChangeTaskCompleted",
          "rdm.change.v1.ChangeRequestImplemented",
        ]);
        expect(events[1]).toMatchObject({ deploymentId: "d-7", environment: "production" });
        expect(change).toMatchObject({ state: ChangeState.IMPLEMENTED, awaitingTasksDeploymentId: "" });
      });
    // The same success again (a replay) adds nothing; by hand, the completion is still refused.
    given(...awaiting)
      .when(success)
      .then((events) => expect(events).toEqual([]));
    given(...awaiting)
      .when({ kind: "completeImplementation" })
      .thenFails("change.complete_implementation.tasks_done", "FAILED_PRECONDITION");
    // A failure meanwhile leaves nothing awaited.
    given(...awaiting)
      .when({ kind: "failImplementation", reason: "rolled back", deploymentId: "d-7", environment: "production" })
      .then((_, { change = noChange() }) =>
        expect(change).toMatchObject({
          state: ChangeState.FAILED,
          awaitingTasksDeploymentId: "",
          awaitingTasksEnvironment: "",
        }),
      );
    // Without a deployment's success, completing the last task is only that.
    given(...add(implementing(), "t-1"))
      .when({ kind: "completeTask", taskId: "t-1", by: "olga" })
      .then((events, { change = noChange() }) => {
        expect(events.map((e) => e.$typeName)).toEqual(["rdm.change.v1.ChangeTaskCompleted"]);
        expect(change.state).toBe(ChangeState.IMPLEMENTING);
      });
  });

  test("refuses to complete a change that has not started", () => {
    given(...scheduled())
      .when({ kind: "completeImplementation" })
      .thenFails("change.complete_implementation.state", "FAILED_PRECONDITION");
  });

  test("a failure records the reason and points to the back-out plan", () => {
    given(...implementing())
      .when({
        kind: "failImplementation",
        reason: "migration timed out",
        deploymentId: "d-9",
        environment: "production",
      })
      .then((events, { change = noChange() }) => {
        expect(events[0]).toMatchObject({
          state: ChangeState.FAILED,
          backoutPlan: "restore the snapshot",
          reason: "migration timed out",
          deploymentId: "d-9",
          linkedReleaseId: RELEASE_ID,
        });
        expect(change).toMatchObject({ state: ChangeState.FAILED, failureReason: "migration timed out" });
      });
  });

  test("a scheduled change can fail directly (the deployment failed before anyone started it)", () => {
    given(...scheduled())
      .when({ kind: "failImplementation", reason: "deployment failed" })
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.FAILED));
  });

  test("refuses to fail an implemented change", () => {
    given(...implemented())
      .when({ kind: "failImplementation", reason: "late" })
      .thenFails("change.fail.state", "FAILED_PRECONDITION");
  });

  test("an implemented change fails when the deployment that implemented it is backed out; another's does not", () => {
    const events = implementing();
    const done = events.concat(
      decideOn(events, { kind: "completeImplementation", deploymentId: "d-7", environment: "production" }),
    );
    expect(fold(done).change?.implementedByDeploymentId).toBe("d-7");
    const backOut = (deploymentId: string) =>
      ({ kind: "failImplementation", reason: "rolled back by hand", deploymentId, environment: "production" }) as const;
    given(...done)
      .when(backOut("d-8"))
      .thenFails("change.fail.state", "FAILED_PRECONDITION");
    given(...done)
      .when(backOut("d-7"))
      .then((events, { change = noChange() }) => {
        expect(events).toMatchObject([{ deploymentId: "d-7", state: ChangeState.FAILED }]);
        expect(change).toMatchObject({ state: ChangeState.FAILED, failureReason: "rolled back by hand" });
      });
    // Reviewed, it is history: a late back-out moves it no more.
    const reviewedAfter = done.concat(
      decideOn(done, { kind: "reviewChange", outcome: ChangeReviewOutcome.SUCCESSFUL, notes: "" }),
    );
    given(...reviewedAfter)
      .when(backOut("d-7"))
      .thenFails("change.fail.state", "FAILED_PRECONDITION");
  });

  test("a change naming several environments is implemented once each has had a deployment's success", () => {
    const events = history(
      { ...raiseNormal, environments: ["staging", "production", "dr"] },
      submit,
      assess(ChangeImpact.LOW, ChangeUrgency.LOW, 1),
      approve("anna"),
    );
    const started = events.concat(decideOn(events, schedule()));
    const implementing = started.concat(
      decideOn(started, { kind: "startImplementation", deploymentId: "d-1", environment: "staging" }),
    );
    const success = (deploymentId: string, environment: string) =>
      ({ kind: "completeImplementation", deploymentId, environment, awaitOpenTasks: true }) as const;
    given(...implementing)
      .when(success("d-1", "staging"))
      .then((recorded, { change = noChange() }) => {
        expect(types(recorded)).toEqual(["ChangeRequestEnvironmentImplemented"]);
        expect(recorded[0]).toMatchObject({
          state: ChangeState.IMPLEMENTING,
          deploymentId: "d-1",
          environment: "staging",
          remainingEnvironments: ["production", "dr"],
        });
        expect(change).toMatchObject({ state: ChangeState.IMPLEMENTING, implementedEnvironments: ["staging"] });
      });
    const staged = implementing.concat(decideOn(implementing, success("d-1", "staging")));
    // The same environment again adds nothing; an environment the change does not name neither.
    given(...staged)
      .when(success("d-4", "staging"))
      .then((recorded) => expect(recorded).toEqual([]));
    given(...staged)
      .when(success("d-5", "qa"))
      .then((recorded) => expect(recorded).toEqual([]));
    // Production's success implements it whatever remains: the release's deployments end there.
    given(...staged)
      .when({ ...success("d-6", "production"), production: true })
      .then((recorded, { change = noChange() }) => {
        expect(types(recorded)).toEqual(["ChangeRequestImplemented"]);
        expect(change).toMatchObject({ state: ChangeState.IMPLEMENTED, implementedByDeploymentId: "d-6" });
      });
    const inDr = staged.concat(decideOn(staged, success("d-2", "dr")));
    expect(fold(inDr).change?.implementedEnvironments).toEqual(["staging", "dr"]);
    given(...inDr)
      .when(success("d-3", "production"))
      .then((recorded, { change = noChange() }) => {
        expect(types(recorded)).toEqual(["ChangeRequestImplemented"]);
        expect(change).toMatchObject({ state: ChangeState.IMPLEMENTED, implementedByDeploymentId: "d-3" });
      });
    // By hand (no environment), the completion implements it whatever remains.
    given(...staged)
      .when({ kind: "completeImplementation" })
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.IMPLEMENTED));
  });

  test("a change naming several production environments awaits each; the others after the first production success do not", () => {
    const events = history(
      { ...raiseNormal, environments: ["staging", "prod-eu", "prod-us"] },
      submit,
      assess(ChangeImpact.LOW, ChangeUrgency.LOW, 1),
      approve("anna"),
    );
    const started = events.concat(decideOn(events, schedule()));
    const implementing = started.concat(
      decideOn(started, { kind: "startImplementation", deploymentId: "d-1", environment: "prod-eu" }),
    );
    const production = (deploymentId: string, environment: string, productionEnvironments: string[]) =>
      ({
        kind: "completeImplementation",
        deploymentId,
        environment,
        production: true,
        productionEnvironments,
        awaitOpenTasks: true,
      }) as const;
    const both = ["prod-eu", "prod-us"];
    // Staging never deployed: production's success skips it, but prod-us is still to come.
    given(...implementing)
      .when(production("d-1", "prod-eu", both))
      .then((recorded, { change = noChange() }) => {
        expect(types(recorded)).toEqual(["ChangeRequestEnvironmentImplemented"]);
        expect(recorded[0]).toMatchObject({ environment: "prod-eu", remainingEnvironments: ["prod-us"] });
        expect(change.state).toBe(ChangeState.IMPLEMENTING);
      });
    const inEu = implementing.concat(decideOn(implementing, production("d-1", "prod-eu", both)));
    given(...inEu)
      .when(production("d-2", "prod-us", both))
      .then((recorded, { change = noChange() }) => {
        expect(types(recorded)).toEqual(["ChangeRequestImplemented"]);
        expect(change).toMatchObject({ state: ChangeState.IMPLEMENTED, implementedByDeploymentId: "d-2" });
      });
    // A success recorded before outcomes listed production's environments implements it, as then.
    given(...implementing)
      .when(production("d-1", "prod-eu", []))
      .then((recorded) => expect(types(recorded)).toEqual(["ChangeRequestImplemented"]));
  });
});

describe("review and close", () => {
  test("an implemented change is reviewed with its outcome", () => {
    given(...implemented())
      .when({ kind: "reviewChange", outcome: ChangeReviewOutcome.SUCCESSFUL, notes: "smooth" })
      .then((_, { change = noChange() }) =>
        expect(change).toMatchObject({
          state: ChangeState.REVIEWED,
          reviewOutcome: ChangeReviewOutcome.SUCCESSFUL,
          reviewNotes: "smooth",
        }),
      );
  });

  test("a failed change is reviewed too", () => {
    const events = implementing();
    const failed = events.concat(decideOn(events, { kind: "failImplementation", reason: "x" }));
    given(...failed)
      .when({ kind: "reviewChange", outcome: ChangeReviewOutcome.BACKED_OUT, notes: "" })
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.REVIEWED));
  });

  test("refuses to review a change still implementing", () => {
    given(...implementing())
      .when({ kind: "reviewChange", outcome: ChangeReviewOutcome.SUCCESSFUL, notes: "" })
      .thenFails("change.review.state", "FAILED_PRECONDITION");
  });

  test("a reviewed change closes", () => {
    given(...reviewed())
      .when({ kind: "closeChange" })
      .then((events, { change = noChange() }) => {
        expect(types(events)).toEqual(["ChangeRequestClosed"]);
        expect(change.state).toBe(ChangeState.CLOSED);
      });
  });

  test("a rejected change closes", () => {
    const rejected = assessed().concat(decideOn(assessed(), reject("ben")));
    given(...rejected)
      .when({ kind: "closeChange" })
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.CLOSED));
  });

  test("refuses to close an implemented change before its review", () => {
    given(...implemented())
      .when({ kind: "closeChange" })
      .thenFails("change.close.state", "FAILED_PRECONDITION");
  });
});

describe("change tasks", () => {
  const addTask: ChangeRequestCommand = { kind: "addTask", taskId: "t-1", title: "drain traffic", assignee: "ops" };

  test("adds an open task without changing the state", () => {
    given(...submitted())
      .when(addTask)
      .then((events, { change = noChange() }) => {
        expect(events[0]).toMatchObject({ state: ChangeState.SUBMITTED, taskId: "t-1" });
        expect(change.tasks).toMatchObject([{ taskId: "t-1", state: ChangeTaskState.OPEN, assignee: "ops" }]);
      });
  });

  test("completes a task, recording who", () => {
    const events = submitted().concat(decideOn(submitted(), addTask));
    given(...events)
      .when({ kind: "completeTask", taskId: "t-1", by: "olga" })
      .then((_, { change = noChange() }) =>
        expect(change.tasks[0]).toMatchObject({ state: ChangeTaskState.DONE, completedBy: "olga" }),
      );
  });

  test("refuses to complete a task twice", () => {
    const events = submitted().concat(decideOn(submitted(), addTask));
    const done = events.concat(decideOn(events, { kind: "completeTask", taskId: "t-1", by: "olga" }));
    given(...done)
      .when({ kind: "completeTask", taskId: "t-1", by: "olga" })
      .thenFails("change.complete_task.task_open", "FAILED_PRECONDITION");
  });

  test("no task is added once the implementation is over: none could gate it or be completed", () => {
    for (const events of [implemented(), reviewed()]) {
      given(...events)
        .when(addTask)
        .thenFails("change.add_task.state", "FAILED_PRECONDITION");
    }
  });

  test("refuses to complete an unknown task", () => {
    given(...submitted())
      .when({ kind: "completeTask", taskId: "nope", by: "olga" })
      .thenFails("change.task.exists", "NOT_FOUND");
  });

  test("refuses a duplicate task id", () => {
    const events = submitted().concat(decideOn(submitted(), addTask));
    given(...events)
      .when(addTask)
      .thenFails("change.task.unique_id", "ALREADY_EXISTS");
  });

  test("refuses to add a task to a closed change", () => {
    const closed = reviewed().concat(decideOn(reviewed(), { kind: "closeChange" }));
    given(...closed)
      .when(addTask)
      .thenFails("change.add_task.state", "FAILED_PRECONDITION");
  });
});

describe("links from the release service", () => {
  const OTHER_RELEASE = "11111111-2222-4333-8444-555555555555";

  /** Raised naming RELEASE_ID, which linked it back (the release service's mirror). */
  const confirmed = () => submitted().concat(decideOn(submitted(), { kind: "linkRelease", releaseId: RELEASE_ID }));

  test("a link from another release leaves the change with its first one and says it is not linked to the other", () => {
    given(...confirmed())
      .when({ kind: "linkRelease", releaseId: OTHER_RELEASE })
      .then((events, { change = noChange() }) => {
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({
          $typeName: "rdm.change.v1.ChangeRequestReleaseUnlinked",
          releaseId: OTHER_RELEASE,
          linkedReleaseId: RELEASE_ID,
          state: ChangeState.SUBMITTED,
        });
        expect(change.linkedReleaseId).toBe(RELEASE_ID);
      });
  });

  test("a change without a release is linked to the first that links it", () => {
    const unlinked = submitted().concat(decideOn(submitted(), { kind: "unlinkRelease", releaseId: RELEASE_ID }));
    given(...unlinked)
      .when({ kind: "linkRelease", releaseId: OTHER_RELEASE })
      .then((events, { change = noChange() }) => {
        expect(events[0]).toMatchObject({
          $typeName: "rdm.change.v1.ChangeRequestReleaseLinked",
          linkedReleaseId: OTHER_RELEASE,
          previousReleaseId: "",
        });
        expect(change.linkedReleaseId).toBe(OTHER_RELEASE);
      });
  });

  test("the release named at RaiseChange linking it back is recorded once; again, nothing", () => {
    expect(confirmed().slice(submitted().length)).toMatchObject([
      { $typeName: "rdm.change.v1.ChangeRequestReleaseLinked", linkedReleaseId: RELEASE_ID, previousReleaseId: "" },
    ]);
    expect(decide({ kind: "linkRelease", releaseId: RELEASE_ID }, fold(confirmed()))).toEqual([]);
  });

  test("a release named at RaiseChange that never linked it back gives way to another release's link", () => {
    given(...submitted())
      .when({ kind: "linkRelease", releaseId: OTHER_RELEASE })
      .then((events, { change = noChange() }) => {
        expect(events).toMatchObject([
          {
            $typeName: "rdm.change.v1.ChangeRequestReleaseLinked",
            linkedReleaseId: OTHER_RELEASE,
            previousReleaseId: RELEASE_ID,
          },
        ]);
        expect(change.linkedReleaseId).toBe(OTHER_RELEASE);
      });
  });

  test("unlinking clears the link; unlinking another release changes nothing", () => {
    expect(decide({ kind: "unlinkRelease", releaseId: OTHER_RELEASE }, fold(submitted()))).toEqual([]);
    given(...submitted())
      .when({ kind: "unlinkRelease", releaseId: RELEASE_ID })
      .then((_, { change = noChange() }) => expect(change.linkedReleaseId).toBe(""));
  });

  test("a release's link or unlink no newer than the last one mirrored from it changes nothing (a replay)", () => {
    const link = (releaseEventVersion: bigint) =>
      ({ kind: "linkRelease", releaseId: OTHER_RELEASE, releaseEventVersion }) as const;
    const unlink = (releaseEventVersion: bigint) =>
      ({ kind: "unlinkRelease", releaseId: OTHER_RELEASE, releaseEventVersion }) as const;
    let events = submitted().concat(decideOn(submitted(), link(3n)));
    events = events.concat(decideOn(events, unlink(5n)));
    expect(fold(events).change?.linkedReleaseId).toBe("");
    expect(events.at(-1)).toMatchObject({ releaseId: OTHER_RELEASE, releaseEventVersion: 5n });
    // The same events again, through a new consumer group: the link stays undone.
    expect(decide(link(3n), fold(events))).toEqual([]);
    expect(decide(unlink(5n), fold(events))).toEqual([]);
    // A newer link is mirrored; one of another release is compared with that release's own.
    expect(decide(link(7n), fold(events))).toMatchObject([{ linkedReleaseId: OTHER_RELEASE, releaseEventVersion: 7n }]);
    expect(decide({ kind: "linkRelease", releaseId: RELEASE_ID, releaseEventVersion: 2n }, fold(events))).toMatchObject(
      [{ linkedReleaseId: RELEASE_ID }],
    );
    // Events recorded before the version was kept (0) order nothing.
    expect(decide({ kind: "linkRelease", releaseId: OTHER_RELEASE }, fold(events))).toHaveLength(1);
  });

  test("answers a link to a closed change with a refusal, keeping the release it has (or none)", () => {
    const closed = reviewed().concat(decideOn(reviewed(), { kind: "closeChange" }));
    const link = { kind: "linkRelease", releaseId: OTHER_RELEASE, releaseEventVersion: 4n } as const;
    const refusal = (linkedReleaseId: string) => ({
      $typeName: "rdm.change.v1.ChangeRequestReleaseUnlinked",
      releaseId: OTHER_RELEASE,
      linkedReleaseId,
      refusedClosed: true,
      releaseEventVersion: 4n,
      state: ChangeState.CLOSED,
    });
    expect(decideOn(closed, link)).toMatchObject([refusal(RELEASE_ID)]);
    const unlinked = closed.concat(decideOn(closed, { kind: "unlinkRelease", releaseId: RELEASE_ID }));
    const answered = unlinked.concat(decideOn(unlinked, link));
    expect(answered.at(-1)).toMatchObject(refusal(""));
    expect(fold(answered).change).toMatchObject({ state: ChangeState.CLOSED, linkedReleaseId: "" });
    // The same link again (a replay) is not answered twice.
    expect(decide(link, fold(answered))).toEqual([]);
  });
});

describe("CancelChange", () => {
  const cancel = (actor = "rita", byChangeManager = false): ChangeRequestCommand => ({
    kind: "cancelChange",
    reason: "superseded by CHG-2026-0002",
    actor,
    byChangeManager,
  });
  const rejected = () => assessed(1).concat(decideOn(assessed(1), reject("anna")));

  test.each([
    ["DRAFT", () => history(raiseNormal)],
    ["SUBMITTED", submitted],
    ["ASSESSED", () => assessed()],
    ["AUTHORIZED", authorized],
    ["SCHEDULED", scheduled],
  ])("the requester cancels a %s change, recording why, who and the state it was in", (from, events) => {
    given(...events())
      .when(cancel())
      .then((emitted, { change = noChange() }) => {
        expect(types(emitted)).toEqual(["ChangeRequestCancelled"]);
        expect(emitted[0]).toMatchObject({
          changeRequestId: CHANGE_ID,
          linkedReleaseId: RELEASE_ID,
          state: ChangeState.CANCELLED,
          previousState: ChangeState[from as keyof typeof ChangeState],
          cancelledBy: "rita",
        });
        expect(change).toMatchObject({
          state: ChangeState.CANCELLED,
          cancellationReason: "superseded by CHG-2026-0002",
          cancelledBy: "rita",
        });
      });
  });

  test("a change manager cancels another's change; the requester is compared folded", () => {
    given(...authorized())
      .when(cancel("carl", true))
      .then((_, { change = noChange() }) => expect(change.cancelledBy).toBe("carl"));
    given(...authorized())
      .when(cancel(" Rita "))
      .then((_, { change = noChange() }) => expect(change.state).toBe(ChangeState.CANCELLED));
  });

  test("refuses anyone else", () => {
    given(...authorized())
      .when(cancel("mallory"))
      .thenFails("change.cancel.requester_or_change_manager", "PERMISSION_DENIED");
  });

  test.each([
    ["IMPLEMENTING", implementing],
    ["IMPLEMENTED", implemented],
    ["REVIEWED", reviewed],
  ])("refuses once implementation started (%s)", (_, events) => {
    given(...events())
      .when(cancel("carl", true))
      .thenFails("change.cancel.implementation_started", "FAILED_PRECONDITION");
  });

  test("refuses a rejected, a closed or an already cancelled change", () => {
    const closed = reviewed().concat(decideOn(reviewed(), { kind: "closeChange" }));
    const cancelled = submitted().concat(decideOn(submitted(), cancel()));
    for (const events of [rejected(), closed, cancelled])
      given(...events)
        .when(cancel("carl", true))
        .thenFails("change.cancel.state", "FAILED_PRECONDITION");
  });

  test("a cancelled change can neither be scheduled nor take tasks", () => {
    const cancelled = authorized().concat(decideOn(authorized(), cancel()));
    given(...cancelled)
      .when(schedule())
      .thenFails("change.schedule.state", "FAILED_PRECONDITION");
    given(...cancelled)
      .when({ kind: "addTask", taskId: "t-9", title: "x", assignee: "" })
      .thenFails("change.add_task.state", "FAILED_PRECONDITION");
  });
});

describe("events carry the lifecycle", () => {
  test("every event of a full run names the change, the linked release and the state after it", () => {
    const events = reviewed().concat(decideOn(reviewed(), { kind: "closeChange" }));
    expect(events.map((e) => [e.$typeName.replace("rdm.change.v1.", ""), ChangeState[e.state]])).toEqual([
      ["ChangeRequestRaised", "DRAFT"],
      ["ChangeRequestSubmitted", "SUBMITTED"],
      ["ChangeRequestAssessed", "ASSESSED"],
      ["ChangeApprovalRecorded", "ASSESSED"],
      ["ChangeRequestAuthorized", "AUTHORIZED"],
      ["ChangeRequestScheduled", "SCHEDULED"],
      ["ChangeImplementationStarted", "IMPLEMENTING"],
      ["ChangeRequestImplemented", "IMPLEMENTED"],
      ["ChangeRequestReviewed", "REVIEWED"],
      ["ChangeRequestClosed", "CLOSED"],
    ]);
    for (const event of events)
      expect(event).toMatchObject({ changeRequestId: CHANGE_ID, linkedReleaseId: RELEASE_ID });
  });
});
