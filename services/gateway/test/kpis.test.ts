// The KPI computations with exact figures: one week of production deployments and releases,
// each KPI with the counts it came from.
import { computeKpis, type DeploymentFact, periodRange, type ReleaseFact, shownEnd } from "../src/kpis/compute.js";

const t = (iso: string) => new Date(`${iso}Z`);

const releases: ReleaseFact[] = [
  {
    releaseId: "R1",
    registeredAt: t("2026-11-28T10:00:00"),
    firstCommitAt: null,
    plannedEnd: t("2026-12-01T12:00:00"),
    services: ["svc-a"],
    neededFix: false,
    approvals: [{ requestedAt: t("2026-11-29T09:00:00"), decidedAt: t("2026-11-29T11:00:00") }],
    deadlineMisses: [{ phase: "PLANNING", dueAt: t("2026-12-01T00:00:00"), escalated: true }],
  },
  {
    releaseId: "R2",
    registeredAt: t("2026-11-30T00:00:00"),
    firstCommitAt: null,
    plannedEnd: t("2026-12-02T00:00:00"),
    services: ["svc-b"],
    neededFix: true,
    approvals: [
      { requestedAt: t("2026-12-01T08:00:00"), decidedAt: t("2026-12-01T08:30:00") },
      { requestedAt: t("2026-12-01T09:00:00"), decidedAt: null },
    ],
    deadlineMisses: [{ phase: "APPROVAL", dueAt: t("2026-11-20T00:00:00"), escalated: false }],
  },
  {
    releaseId: "R3",
    registeredAt: t("2026-12-01T00:00:00"),
    firstCommitAt: null,
    plannedEnd: null,
    services: ["svc-a"],
    neededFix: false,
    approvals: [],
    deadlineMisses: [],
  },
];

const deployment = (
  deploymentId: string,
  releaseId: "R1" | "R2" | "R3",
  outcomes: { succeededAt?: string; failedAt?: string; rolledBackAt?: string },
  environment = "production",
): DeploymentFact => ({
  deploymentId,
  releaseId,
  environment,
  services: releases.find((r) => r.releaseId === releaseId)?.services ?? [],
  succeededAt: outcomes.succeededAt ? t(outcomes.succeededAt) : null,
  failedAt: outcomes.failedAt ? t(outcomes.failedAt) : null,
  rolledBackAt: outcomes.rolledBackAt ? t(outcomes.rolledBackAt) : null,
});

const deployments = [
  deployment("D1", "R1", { succeededAt: "2026-12-01T10:00:00" }),
  deployment("D2", "R2", { failedAt: "2026-12-02T10:00:00", rolledBackAt: "2026-12-02T10:30:00" }),
  deployment("D3", "R2", { succeededAt: "2026-12-03T00:00:00" }),
  deployment("D4", "R3", { failedAt: "2026-12-04T00:00:00" }),
  deployment("D5", "R3", { succeededAt: "2026-12-04T06:00:00" }),
  deployment("D6", "R1", { succeededAt: "2026-12-01T08:00:00" }, "staging"),
  deployment("D8", "R2", { succeededAt: "2026-12-02T08:00:00" }, "staging"),
  // The next week's first instant: outside [from, to).
  deployment("D7", "R3", { succeededAt: "2026-12-07T00:00:00" }),
];

const week = {
  period: "week" as const,
  ...periodRange("week", t("2026-12-02T15:00:00")),
  environment: "production",
  production: true,
};

test("periods are the UTC day, the ISO week from Monday and the month that contain the instant", () => {
  const at = t("2026-12-02T15:00:00");
  expect(periodRange("day", at)).toEqual({ from: t("2026-12-02T00:00:00"), to: t("2026-12-03T00:00:00") });
  expect(periodRange("week", at)).toEqual({ from: t("2026-11-30T00:00:00"), to: t("2026-12-07T00:00:00") });
  expect(periodRange("month", at)).toEqual({ from: t("2026-12-01T00:00:00"), to: t("2027-01-01T00:00:00") });
  expect(periodRange("week", t("2026-11-29T23:59:59"))).toEqual({
    from: t("2026-11-23T00:00:00"),
    to: t("2026-11-30T00:00:00"),
  });
});

test("periods in the years 1-99 are in those years (not in 1901-1999)", () => {
  expect(periodRange("day", t("0001-06-15T12:00:00"))).toEqual({
    from: t("0001-06-15T00:00:00"),
    to: t("0001-06-16T00:00:00"),
  });
  // 0001-01-01 is a Monday in the proleptic Gregorian calendar.
  expect(periodRange("week", t("0001-01-03T00:00:00"))).toEqual({
    from: t("0001-01-01T00:00:00"),
    to: t("0001-01-08T00:00:00"),
  });
  expect(periodRange("month", t("0099-12-31T12:00:00"))).toEqual({
    from: t("0099-12-01T00:00:00"),
    to: t("0100-01-01T00:00:00"),
  });
});

test("a period of the year 9999 is counted whole; its end is shown as 9999's last millisecond", () => {
  const last = t("9999-12-31T23:59:59.999");
  const day = periodRange("day", last);
  expect(day).toEqual({ from: t("9999-12-31T00:00:00"), to: t("+010000-01-01T00:00:00") });
  expect(computeKpis({ ...week, ...day }, [], []).deploymentFrequency.days).toBe(1);
  // 9999-12-27 is a Monday: its week ends in the year 10000.
  expect(periodRange("week", last).from).toEqual(t("9999-12-27T00:00:00"));
  for (const period of ["day", "week", "month"] as const)
    expect(shownEnd(periodRange(period, last).to).toISOString()).toBe("9999-12-31T23:59:59.999Z");
  expect(shownEnd(t("9999-12-31T00:00:00"))).toEqual(t("9999-12-31T00:00:00"));
});

test("one week in production: every KPI with its counts", () => {
  expect(computeKpis(week, deployments, releases)).toEqual({
    deploymentFrequency: { deployments: 3, days: 7, perDay: 3 / 7 },
    // D1, D3: three days each; D5: three days and six hours.
    leadTimeForChanges: { count: 3, totalSeconds: 799_200, meanSeconds: 266_400, medianSeconds: 259_200 },
    // D2 failed and rolled back, D4 failed, D3 succeeded in a release whose review needed a fix.
    changeFailureRate: { deployments: 5, failures: 3, failed: 2, rolledBack: 1, neededFix: 1, rate: 0.6 },
    // D2: its rollback 30 min later; D4: D5's success six hours later.
    timeToRestore: { count: 2, totalSeconds: 23_400, meanSeconds: 11_700, medianSeconds: 11_700, unrestored: 0 },
    // R1 before its planned end, R2 after it, R3 without a planned window.
    onTimeReleaseRate: { releases: 3, withPlannedWindow: 2, onTime: 1, late: 1, rate: 0.5 },
    // R2's decided approval; R1's was decided the week before, R2's second is pending.
    approvalLeadTime: { count: 1, totalSeconds: 1800, meanSeconds: 1800, medianSeconds: 1800 },
    slaBreaches: { breaches: 1, escalated: 1 },
  });
});

test("per service and per environment", () => {
  const serviceA = computeKpis({ ...week, service: "svc-a" }, deployments, releases);
  expect(serviceA.deploymentFrequency).toEqual({ deployments: 2, days: 7, perDay: 2 / 7 });
  expect(serviceA.changeFailureRate).toMatchObject({ deployments: 3, failures: 1, failed: 1, neededFix: 0 });
  expect(serviceA.timeToRestore).toMatchObject({ count: 1, totalSeconds: 21_600, unrestored: 0 });
  // Named in capitals, as a deployment may target it: the same service.
  expect(computeKpis({ ...week, service: "SVC-A" }, deployments, releases)).toEqual(serviceA);
  const staging = computeKpis({ ...week, environment: "staging", production: false }, deployments, releases);
  expect(staging.deploymentFrequency.deployments).toBe(2);
  expect(staging.leadTimeForChanges).toEqual({
    count: 2,
    totalSeconds: 252_000 + 201_600,
    meanSeconds: (252_000 + 201_600) / 2,
    medianSeconds: (252_000 + 201_600) / 2,
  });
  // R2's review judged what production got: its staging deployment (D8) did not fail.
  expect(staging.changeFailureRate).toEqual({
    deployments: 2,
    failures: 0,
    failed: 0,
    rolledBack: 0,
    neededFix: 0,
    rate: 0,
  });
});

test("lead time starts at the first commit of the release's changes when one was given, else at its registration", () => {
  // R2's changes were first committed two days before it was registered; R1 and R3 gave no commit time.
  const withCommit = releases.map((r) =>
    r.releaseId === "R2" ? { ...r, firstCommitAt: t("2026-11-28T00:00:00") } : r,
  );
  expect(computeKpis(week, deployments, withCommit).leadTimeForChanges).toEqual({
    count: 3,
    // D1: 3 days (registration); D3: 5 days (first commit); D5: 3 days 6 hours (registration).
    totalSeconds: 799_200 + 2 * 86_400,
    meanSeconds: (799_200 + 2 * 86_400) / 3,
    medianSeconds: 280_800,
  });
});

test("a failure not restored within the data is counted as unrestored; empty periods have null ratios", () => {
  const day = {
    period: "day" as const,
    ...periodRange("day", t("2026-12-04T12:00:00")),
    environment: "production",
    production: true,
  };
  const onlyFailure = computeKpis(day, [deployment("D4", "R3", { failedAt: "2026-12-04T00:00:00" })], releases);
  expect(onlyFailure.timeToRestore).toEqual({
    count: 0,
    totalSeconds: 0,
    meanSeconds: null,
    medianSeconds: null,
    unrestored: 1,
  });
  const empty = computeKpis(day, [], []);
  expect(empty.changeFailureRate.rate).toBeNull();
  expect(empty.onTimeReleaseRate.rate).toBeNull();
  expect(empty.deploymentFrequency).toEqual({ deployments: 0, days: 1, perDay: 0 });
});
