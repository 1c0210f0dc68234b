/**
 * The KPIs as pure functions of facts taken from the events (see queries in the kpis route):
 * the four DORA metrics, on-time release rate, approval lead time and SLA breaches, each with the
 * counts it came from. The definitions are the ones the OpenAPI description of /v1/kpis states.
 */

export type Period = "day" | "week" | "month";

/** One deployment, from its outcome events. */
export interface DeploymentFact {
  deploymentId: string;
  releaseId: string;
  environment: string;
  /** Configuration items it touched: its artifacts' targets and the release package's items. */
  services: string[];
  succeededAt: Date | null;
  failedAt: Date | null;
  rolledBackAt: Date | null;
}

/** One release, from its folded events. */
export interface ReleaseFact {
  releaseId: string;
  registeredAt: Date;
  /** The earliest first commit time of the changes linked to it (cancelled ones aside); null when none gave one. */
  firstCommitAt: Date | null;
  plannedEnd: Date | null;
  services: string[];
  /** The post-implementation review said the release needed a fix (not SUCCESSFUL). */
  neededFix: boolean;
  approvals: { requestedAt: Date; decidedAt: Date | null }[];
  deadlineMisses: { phase: string; dueAt: Date; escalated: boolean }[];
}

export interface KpiScope {
  period: Period;
  from: Date;
  to: Date;
  environment: string;
  /** The environment is production: a release's review judges its production deployments only. */
  production: boolean;
  service?: string;
}

const DAY_MS = 86_400_000;

/** Midnight UTC of a calendar date (a month past December is in the next year). */
function utcMidnight(year: number, month: number, day: number): Date {
  // Not Date.UTC: it reads the years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  return date;
}

/** The UTC day, ISO week (from Monday) or month that contains `at`: [from, to). */
export function periodRange(period: Period, at: Date): { from: Date; to: Date } {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  if (period === "month") return { from: utcMidnight(y, m, 1), to: utcMidnight(y, m + 1, 1) };
  const day = utcMidnight(y, m, at.getUTCDate());
  if (period === "day") return { from: day, to: new Date(day.getTime() + DAY_MS) };
  const monday = new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * DAY_MS);
  return { from: monday, to: new Date(monday.getTime() + 7 * DAY_MS) };
}

/** The last instant the platform takes (RFC 3339 has no year 10000). */
const LAST_INSTANT = new Date("9999-12-31T23:59:59.999Z");

/**
 * A period's end as an answer shows it: a period of the year 9999 ends in the year 10000, which no
 * RFC 3339 date-time can say, so it shows the last millisecond of 9999 instead (the period itself
 * is counted whole).
 */
export const shownEnd = (to: Date) => (to > LAST_INSTANT ? LAST_INSTANT : to);

/** Durations in seconds: how many, their mean and median (null when none). */
export function durationStats(seconds: number[]) {
  const sorted = [...seconds].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median =
    n === 0 ? null : n % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return {
    count: n,
    totalSeconds: sorted.reduce((a, b) => a + b, 0),
    meanSeconds: n === 0 ? null : sorted.reduce((a, b) => a + b, 0) / n,
    medianSeconds: median,
  };
}

const ratio = (part: number, whole: number) => (whole === 0 ? null : part / whole);
const seconds = (from: Date, to: Date) => (to.getTime() - from.getTime()) / 1000;

type Within = (t: Date | null) => t is Date;

/**
 * Time to restore: from a failed deployment to its rollback completing or the environment's next
 * successful deployment, whichever is first; failures with neither are unrestored.
 */
function timeToRestore(inEnvironment: DeploymentFact[], within: Within) {
  const restores: number[] = [];
  let unrestored = 0;
  for (const d of inEnvironment) {
    const brokeAt = d.failedAt;
    if (!within(brokeAt)) continue;
    const restoredAt = [d.rolledBackAt, ...inEnvironment.map((o) => o.succeededAt)]
      .filter((t): t is Date => t !== null && t >= brokeAt)
      .sort((a, b) => a.getTime() - b.getTime())[0];
    if (restoredAt) restores.push(seconds(brokeAt, restoredAt));
    else unrestored++;
  }
  return { ...durationStats(restores), unrestored };
}

/** Releases whose first success in the environment is in the period, against their planned window's end. */
function onTimeReleases(inEnvironment: DeploymentFact[], releases: ReleaseFact[], within: Within) {
  const firstSuccess = new Map<string, Date>();
  for (const d of inEnvironment) {
    if (!d.succeededAt) continue;
    const seen = firstSuccess.get(d.releaseId);
    if (!seen || d.succeededAt < seen) firstSuccess.set(d.releaseId, d.succeededAt);
  }
  const delivered = releases.filter((r) => within(firstSuccess.get(r.releaseId) ?? null));
  const planned = delivered.filter((r) => r.plannedEnd !== null);
  const onTime = planned.filter((r) => (firstSuccess.get(r.releaseId) as Date) <= (r.plannedEnd as Date));
  return {
    releases: delivered.length,
    withPlannedWindow: planned.length,
    onTime: onTime.length,
    late: planned.length - onTime.length,
    rate: ratio(onTime.length, planned.length),
  };
}

/** Whether a fact is about the service: ids compared without case, as the deployment gates compare targets. */
export const aboutService = (fact: { services: string[] }, service: string) => {
  const wanted = service.toLowerCase();
  return fact.services.some((id) => id.toLowerCase() === wanted);
};

export function computeKpis(scope: KpiScope, deployments: DeploymentFact[], releases: ReleaseFact[]) {
  const within: Within = (t): t is Date => t !== null && t >= scope.from && t < scope.to;
  const forService = <T extends { services: string[] }>(facts: T[]) =>
    scope.service ? facts.filter((f) => aboutService(f, scope.service as string)) : facts;
  const releaseById = new Map(releases.map((r) => [r.releaseId, r]));
  const inEnvironment = forService(deployments).filter((d) => d.environment === scope.environment);
  const scopedReleases = forService(releases);

  // Deployment frequency: successful deployments to the environment in the period, per day.
  const succeeded = inEnvironment.filter((d) => within(d.succeededAt));
  const days = (scope.to.getTime() - scope.from.getTime()) / DAY_MS;

  // Lead time for changes: the first commit of the release's changes (else its registration) to
  // the deployment's success.
  const leadTimes = succeeded.flatMap((d) => {
    const release = releaseById.get(d.releaseId);
    return release && d.succeededAt ? [seconds(release.firstCommitAt ?? release.registeredAt, d.succeededAt)] : [];
  });

  // Change failure rate: deployments whose outcome falls in the period; failed, rolled back, or
  // succeeded in production in a release whose review said it needed a fix (the review judges
  // what production got: the staging deployment before it did not fail).
  const outcomeAt = (d: DeploymentFact) => d.failedAt ?? d.succeededAt ?? d.rolledBackAt;
  const finished = inEnvironment.filter((d) => within(outcomeAt(d)));
  const failed = finished.filter((d) => d.failedAt !== null);
  const rolledBack = finished.filter((d) => d.rolledBackAt !== null);
  const neededFix = finished.filter(
    (d) =>
      scope.production &&
      d.failedAt === null &&
      d.rolledBackAt === null &&
      releaseById.get(d.releaseId)?.neededFix === true,
  );
  const failures = finished.filter((d) => d.failedAt !== null || d.rolledBackAt !== null || neededFix.includes(d));

  const approvalTimes = scopedReleases.flatMap((r) =>
    r.approvals.flatMap((a) => (within(a.decidedAt) ? [seconds(a.requestedAt, a.decidedAt)] : [])),
  );
  const breaches = scopedReleases.flatMap((r) => r.deadlineMisses.filter((m) => within(m.dueAt)));

  return {
    deploymentFrequency: { deployments: succeeded.length, days, perDay: succeeded.length / days },
    leadTimeForChanges: durationStats(leadTimes),
    changeFailureRate: {
      deployments: finished.length,
      failures: failures.length,
      failed: failed.length,
      rolledBack: rolledBack.length,
      neededFix: neededFix.length,
      rate: ratio(failures.length, finished.length),
    },
    timeToRestore: timeToRestore(inEnvironment, within),
    onTimeReleaseRate: onTimeReleases(inEnvironment, scopedReleases, within),
    approvalLeadTime: durationStats(approvalTimes),
    slaBreaches: { breaches: breaches.length, escalated: breaches.filter((b) => b.escalated).length },
  };
}
