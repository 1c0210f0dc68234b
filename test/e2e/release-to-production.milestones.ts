// The gateway's calendar, inventory, KPIs and audit filters of release-to-production.test.ts at
// its milestones, with exact figures: the instants the KPIs are computed from are the events'
// own (their metadata's occurredAt, as the topic reader read them).
import { waitFor } from "@rdm/testkit";
import { WINDOW } from "./release-to-production.steps.js";
import type { Published, RunningSystem } from "./release-to-production.system.js";
import { auditPages, eventually, viewOf } from "./release-to-production.views.js";

/** One release as the flow made it: its change, its deployments per environment, its artifact. */
export interface Made {
  releaseId: string;
  changeId: string;
  test: string;
  production: string;
  artifactId: string;
}

/**
 * The `count` events of `type` about `subject` on the topics, once the reader has them all (by
 * id: a redelivery is one event); more is a failure.
 */
export function eventsOf(system: RunningSystem, subject: string, type: string, count: number) {
  return waitFor(
    () => {
      const found = new Map(
        system
          .published()
          .filter((e) => e.subject === subject && e.type === `rdm.${type}`)
          .map((e) => [e.id, e]),
      );
      if (found.size > count) throw new Error(`${found.size} events ${type} of ${subject}, not ${count}`);
      return found.size === count && [...found.values()];
    },
    { timeoutMs: 60_000, description: `${count} events ${type} of ${subject} on the topics` },
  );
}

/** The one event of `type` about `subject` on the topics. */
export const eventOf = async (system: RunningSystem, subject: string, type: string) =>
  (await eventsOf(system, subject, type, 1))[0] as Published;

const seconds = (from: Published, to: Published) => (to.occurredAt.getTime() - from.occurredAt.getTime()) / 1000;

/** What runs on `targets` after `deploymentId`'s outcome `outcome` (the event that put it there). */
export async function entries(
  system: RunningSystem,
  environment: "test" | "production",
  version: string,
  via: { outcome: "SUCCEEDED" | "ROLLED_BACK"; by: Made; artifactId: string },
  targets: string[],
) {
  const deploymentId = via.by[environment];
  const event = await eventOf(
    system,
    deploymentId,
    `deployment.v1.Deployment${via.outcome === "SUCCEEDED" ? "Succeeded" : "RolledBack"}`,
  );
  return targets.map((targetCiId) => ({
    targetCiId,
    artifactName: "checkout",
    artifactVersion: version,
    artifactId: via.artifactId,
    since: event.occurredAt.toISOString(),
    deploymentId,
    releaseId: via.by.releaseId,
    via: via.outcome,
  }));
}

/** `/v1/inventory` shows exactly `expected`, in promotion order: per environment its newest outcome and its entries. */
export async function expectInventory(
  system: RunningSystem,
  expected: { environment: string; lastOutcome: string; lastDeploymentId: string; entries: object[] }[],
) {
  await eventually("the inventory", async () => {
    const { environments } = await viewOf(system, "/v1/inventory");
    expect(environments).toEqual(
      expected.map(({ entries: rows, ...environment }) =>
        expect.objectContaining({
          ...environment,
          health: "HEALTHY",
          entries: rows.map((row) => expect.objectContaining(row)),
        }),
      ),
    );
  });
}

export const range = `from=${new Date(WINDOW.start.getTime() - 3_600_000).toISOString()}&to=${new Date(WINDOW.end.getTime() + 3_600_000).toISOString()}`;
const window = { start: WINDOW.start.toISOString(), end: WINDOW.end.toISOString() };

/** `/v1/calendar` of production around the flow's window: releases, changes, deployments, conflicts. */
export async function expectCalendar(
  system: RunningSystem,
  expected: {
    releases: string[];
    changes: [string, string][];
    deployments: [string, string][];
    conflicts: { kind: string; ids: string[]; ciIds: string[] }[];
  },
) {
  await eventually("the production calendar", async () => {
    const calendar = await viewOf(system, `/v1/calendar?${range}&environment=production`);
    expect(calendar.releases.map((r: { releaseId: string; window: object }) => [r.releaseId, r.window])).toEqual(
      expected.releases.map((id) => [id, window]),
    );
    const ofChange = (c: { changeRequestId: string; state: string; window: object }) => [
      c.changeRequestId,
      c.state,
      c.window,
    ];
    expect(calendar.changes.map(ofChange).sort()).toEqual(
      expected.changes.map(([id, state]) => [id, state, window]).sort(),
    );
    const ofDeployment = (d: { deploymentId: string; state: string; strategy: string; window: object }) => [
      d.deploymentId,
      d.state,
      d.strategy,
      d.window,
    ];
    expect(calendar.deployments.map(ofDeployment).sort()).toEqual(
      expected.deployments.map(([id, state]) => [id, state, "CANARY", window]).sort(),
    );
    expect(calendar.collisions).toEqual([]);
    expect(
      calendar.conflicts.map((c: { kind: string; items: { id: string }[]; ciIds: string[] }) => ({
        kind: c.kind,
        ids: c.items.map((i) => i.id).sort(),
        ciIds: [...c.ciIds].sort(),
      })),
    ).toEqual(expected.conflicts.map((c) => ({ ...c, ids: [...c.ids].sort(), ciIds: [...c.ciIds].sort() })));
  });
}

/** `/v1/kpis` of production for the month of the flow, every figure exact. */
export async function expectKpis(system: RunningSystem, released: Made[], failed: Made | undefined) {
  const e = (subject: string, type: string) => eventOf(system, subject, type);
  const first = released[0] as Made;
  const succeeded = await e(first.production, "deployment.v1.DeploymentSucceeded");
  const leadTime = seconds(await e(first.releaseId, "release.v1.ReleaseRegistered"), succeeded);
  const approvals: number[] = [];
  for (const made of [...released, ...(failed ? [failed] : [])]) {
    // Two votes of the CAB: the second decides.
    const votes = await eventsOf(system, made.releaseId, "release.v1.ReleaseApprovalGranted", 2);
    approvals.push(seconds(await e(made.releaseId, "release.v1.ReleaseApprovalRequested"), votes[1] as Published));
  }
  const restore = failed
    ? seconds(
        await e(failed.production, "deployment.v1.DeploymentFailed"),
        await e(failed.production, "deployment.v1.DeploymentRolledBack"),
      )
    : undefined;
  const durations = (values: number[]) => {
    const total = values.reduce((a, b) => a + b, 0);
    const sorted = [...values].sort((a, b) => a - b);
    const median =
      values.length % 2
        ? sorted[(values.length - 1) / 2]
        : ((sorted[values.length / 2 - 1] ?? 0) + (sorted[values.length / 2] ?? 0)) / 2;
    return {
      count: values.length,
      totalSeconds: close(total),
      meanSeconds: values.length ? close(total / values.length) : null,
      medianSeconds: values.length ? close(median as number) : null,
    };
  };
  await eventually("the production KPIs", async () => {
    const kpis = await viewOf(
      system,
      `/v1/kpis?environment=production&period=month&at=${succeeded.occurredAt.toISOString()}`,
    );
    const days = (Date.parse(kpis.to) - Date.parse(kpis.from)) / 86_400_000;
    expect(kpis).toEqual({
      period: "month",
      from: expect.any(String),
      to: expect.any(String),
      environment: "production",
      production: true,
      service: null,
      deploymentFrequency: { deployments: 1, days, perDay: 1 / days },
      leadTimeForChanges: durations([leadTime]),
      changeFailureRate: failed
        ? { deployments: 2, failures: 1, failed: 1, rolledBack: 1, neededFix: 0, rate: 0.5 }
        : { deployments: 1, failures: 0, failed: 0, rolledBack: 0, neededFix: 0, rate: 0 },
      timeToRestore: { ...durations(restore === undefined ? [] : [restore]), unrestored: 0 },
      onTimeReleaseRate: { releases: 1, withPlannedWindow: 1, onTime: 1, late: 0, rate: 1 },
      approvalLeadTime: durations(approvals),
      slaBreaches: { breaches: 0, escalated: 0 },
    });
  });
}

/** Equal to the millisecond the events record (sums of milliseconds in seconds round differently). */
const close = (value: number) => expect.closeTo(value, 3);

/** The audit trail filtered by release, actor and environment equals the whole trail filtered alike; pages add up. */
export async function expectAuditFilters(system: RunningSystem, made: Made) {
  await eventually("the audit filters and pages", async () => {
    const all = await auditPages(system, "", 500);
    const ids = (entries: { eventId: string }[]) => entries.map((x) => x.eventId);
    const release = await auditPages(system, `release=${made.releaseId}`, 500);
    expect(ids(release)).toEqual(ids(all.filter((x) => x.releaseId === made.releaseId)));
    // Its own events and those of its deployments are all there.
    const about = system.published().filter((p) => [made.releaseId, made.test, made.production].includes(p.subject));
    expect(ids(release)).toEqual(expect.arrayContaining(about.map((p) => p.id)));
    const ann = await auditPages(system, "actor=ann", 500);
    expect(ids(ann).sort()).toEqual(
      [
        ...new Set(
          system
            .published()
            .filter((p) => p.actor === "ann")
            .map((p) => p.id),
        ),
      ].sort(),
    );
    expect(ann.length).toBeGreaterThan(0);
    const production = await auditPages(system, "environment=production", 500);
    expect(ids(production)).toEqual(ids(all.filter((x) => x.environments.includes("production"))));
    expect(ids(production)).toEqual(
      expect.arrayContaining(
        system
          .published()
          .filter((p) => p.subject === made.production)
          .map((p) => p.id),
      ),
    );
    // Pages of 7 (keyset, nextAfter) hold the whole trail, in order, once.
    expect(ids(await auditPages(system, "", 7))).toEqual(ids(all));
  });
}
