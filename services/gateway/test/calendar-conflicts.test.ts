// The calendar's conflict rules as a pure function: which windows collide, and which do not.
import {
  type CalendarChange,
  type CalendarDeployment,
  type CalendarFreeze,
  calendarConflicts,
} from "../src/http/routes/calendar/conflicts.js";
import { conflictInputs } from "../src/http/routes/calendar/queries.js";

const w = (startHour: number, endHour: number) => ({
  start: new Date(Date.UTC(2026, 11, 2, startHour)),
  end: new Date(Date.UTC(2026, 11, 2, endHour)),
});
const change = (id: string, hours: [number, number], ciIds: string[], more: Partial<CalendarChange> = {}) => ({
  id,
  key: id.toUpperCase(),
  booked: true,
  window: w(...hours),
  ciIds,
  environments: ["prod"],
  overriddenFreezeIds: [],
  linkedReleaseId: "",
  ...more,
});
const deployment = (id: string, hours: [number, number], more: Partial<CalendarDeployment> = {}) => ({
  id,
  releaseId: "r",
  environment: "prod",
  window: w(...hours),
  ciIds: ["host-1"],
  implementedChangeIds: [],
  overriddenFreezeIds: [],
  ...more,
});
const freeze = (id: string, hours: [number, number], more: Partial<CalendarFreeze> = {}): CalendarFreeze => ({
  id,
  name: id,
  window: w(...hours),
  all: false,
  ciIds: [],
  environments: ["prod"],
  ...more,
});
const kinds = (c: ReturnType<typeof calendarConflicts>) =>
  c.map((x) => `${x.kind} ${x.items.map((i) => i.id).join("+")}`);

test("changes sharing CIs collide only while both are booked and their windows overlap (half-open)", () => {
  const a = change("c-a", [8, 10], ["svc", "db"]);
  const b = change("c-b", [9, 11], ["db"]);
  const adjacent = change("c-c", [10, 12], ["svc"]);
  const draft = change("c-d", [8, 12], ["svc"], { booked: false });
  const conflicts = calendarConflicts([b, a, adjacent, draft], [], []);
  expect(conflicts).toEqual([
    {
      kind: "CHANGE_CHANGE",
      items: [expect.objectContaining({ id: "c-a" }), expect.objectContaining({ id: "c-b" })],
      ciIds: ["db"],
      environment: null,
    },
  ]);
});

test("a freeze catches the changes and deployments it covers, unless they overrode it", () => {
  const f = freeze("f-prod", [9, 10]);
  const byCi = freeze("f-ci", [9, 10], { environments: [], ciIds: ["host-1"] });
  const elsewhere = freeze("f-test", [9, 10], { environments: ["test"] });
  const covered = change("c-a", [8, 12], ["svc"]);
  const overriding = change("c-b", [8, 12], ["svc2"], { overriddenFreezeIds: ["f-prod"] });
  const d = deployment("d-1", [9, 11]);
  expect(kinds(calendarConflicts([covered, overriding], [d], [f, byCi, elsewhere]))).toEqual([
    "CHANGE_FREEZE c-a+f-prod",
    "DEPLOYMENT_FREEZE d-1+f-prod",
    "DEPLOYMENT_FREEZE d-1+f-ci",
  ]);
  // A deployment whose start overrode the freeze (an emergency change's justification) is not caught.
  const emergency = deployment("d-3", [9, 11], { overriddenFreezeIds: ["f-prod"] });
  expect(kinds(calendarConflicts([], [emergency], [f, byCi]))).toEqual(["DEPLOYMENT_FREEZE d-3+f-ci"]);
  // A target written in capitals is the same CI, as the deployment gates compare targets.
  const inCapitals = deployment("d-2", [9, 11], { ciIds: ["HOST-1"], environment: "test2" });
  expect(calendarConflicts([], [inCapitals], [byCi])).toEqual([
    expect.objectContaining({ kind: "DEPLOYMENT_FREEZE", ciIds: ["host-1"] }),
  ]);
  // A change naming no environment may reach any: every environment's freeze covers it, as the
  // change service applies them.
  const anywhere = change("c-c", [8, 12], ["svc3"], { environments: [] });
  expect(calendarConflicts([anywhere], [], [f, byCi, elsewhere])).toEqual([
    expect.objectContaining({
      kind: "CHANGE_FREEZE",
      items: [expect.anything(), expect.objectContaining({ id: "f-prod" })],
      environment: "prod",
    }),
    expect.objectContaining({
      kind: "CHANGE_FREEZE",
      items: [expect.anything(), expect.objectContaining({ id: "f-test" })],
      environment: "test",
    }),
  ]);
  // On one environment's calendar, a freeze of several names that one.
  const both = freeze("f-both", [9, 10], { environments: ["prod", "test"] });
  expect(calendarConflicts([anywhere], [], [both], "test").map((c) => c.environment)).toEqual(["test"]);
  expect(calendarConflicts([anywhere], [], [both]).map((c) => c.environment)).toEqual(["prod"]);
});

test("deployments to one environment at once, and a deployment on a change's CIs it is not linked to", () => {
  const linked = change("c-a", [8, 12], ["host-1"]);
  const unlinked = change("c-b", [8, 12], ["host-1"]);
  const d1 = deployment("d-1", [9, 11], { implementedChangeIds: ["c-a"] });
  const d2 = deployment("d-2", [10, 12], { implementedChangeIds: ["c-a", "c-b"] });
  const otherEnvironment = deployment("d-3", [9, 11], { environment: "test", ciIds: ["host-9"] });
  expect(kinds(calendarConflicts([linked, unlinked], [d1, d2, otherEnvironment], []))).toEqual([
    "CHANGE_CHANGE c-a+c-b",
    "DEPLOYMENT_DEPLOYMENT d-1+d-2",
    "CHANGE_DEPLOYMENT c-b+d-1",
  ]);
});

test("a deployment implements the changes its start checked as well as its plan's: no conflict with either", () => {
  const hours = w(9, 11);
  const row = (
    id: string,
    environment: string,
    plan: { linkedChangeIds: string[]; changeRequestIds?: string[]; overriddenFreezeWindowIds?: string[] },
  ) => ({
    deployment_id: id,
    release_id: "r",
    environment,
    status: "SCHEDULED",
    window_start: hours.start,
    window_end: hours.end,
    plan: { ...plan, steps: [{ targetCiIds: ["host-1"] }] },
  });
  const inputs = conflictInputs({
    changes: [
      {
        change_request_id: "c-a",
        key: "C-A",
        state: "SCHEDULED",
        window_start: hours.start,
        window_end: hours.end,
        affected_ci_ids: ["host-1"],
        environments: ["prod"],
        overridden_freeze_ids: [],
        linked_release_id: "",
      },
    ],
    releases: [],
    deployments: [
      row("d-plan", "prod", { linkedChangeIds: ["c-a"] }),
      row("d-start", "stage", { linkedChangeIds: [], changeRequestIds: ["C-A"] }),
      row("d-neither", "test", { linkedChangeIds: [], changeRequestIds: [] }),
    ],
    freezes: [],
  } as never);
  expect(kinds(calendarConflicts(inputs.changes, inputs.deployments, inputs.freezes))).toEqual([
    "CHANGE_DEPLOYMENT c-a+d-neither",
  ]);
  // What its start overrode comes from its plan (none for plans stored before it was kept).
  expect(inputs.deployments.map((d) => d.overriddenFreezeIds)).toEqual([[], [], []]);
  const overrode = conflictInputs({
    changes: [],
    releases: [],
    deployments: [row("d-emergency", "prod", { linkedChangeIds: [], overriddenFreezeWindowIds: ["f-1"] })],
    freezes: [],
  } as never);
  expect(overrode.deployments[0]?.overriddenFreezeIds).toEqual(["f-1"]);
});

test("a deployment implements the changes linked to its release, started or not", () => {
  const ofRelease = change("c-a", [8, 12], ["host-1"], { linkedReleaseId: "R-1" });
  const ofAnother = change("c-b", [8, 12], ["host-1"], { linkedReleaseId: "r-2" });
  const planned = deployment("d-1", [9, 11], { releaseId: "r-1" });
  expect(kinds(calendarConflicts([ofRelease, ofAnother], [planned], []))).toEqual([
    "CHANGE_CHANGE c-a+c-b",
    "CHANGE_DEPLOYMENT c-b+d-1",
  ]);
});

test("a blue/green deployment concerns both colours: a freeze on the live one conflicts with it", () => {
  const row = (id: string, strategy: string) => ({
    deployment_id: id,
    release_id: "r",
    environment: "prod",
    status: "SCHEDULED",
    window_start: w(9, 11).start,
    window_end: w(9, 11).end,
    plan: { strategy, linkedChangeIds: [], steps: [{ targetCiIds: ["green-1"] }] },
    colour_ci_ids: ["blue-1", "green-1"],
  });
  const inputs = conflictInputs({
    changes: [],
    releases: [],
    deployments: [row("d-bg", "BLUE_GREEN"), row("d-rolling", "ROLLING")],
    freezes: [],
  } as never);
  const onBlue = freeze("f-blue", [8, 12], { environments: [], ciIds: ["blue-1"] });
  const freezeConflicts = kinds(calendarConflicts([], inputs.deployments, [onBlue])).filter((kind) =>
    kind.startsWith("DEPLOYMENT_FREEZE"),
  );
  expect(freezeConflicts).toEqual(["DEPLOYMENT_FREEZE d-bg+f-blue"]);
});
