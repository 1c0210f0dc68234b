// The gateway's combined views of release-to-production.test.ts, read over HTTP as a viewer. The
// views are eventually consistent: each check is retried (waitFor) until the view equals what the
// services answer over gRPC, or what the events on the topics say; the last mismatch is the error.
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ArtifactStatus, IntegrityStatus } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind, StepState } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ApprovalStatus, ReleasePhase, ReleaseStatus, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { waitFor } from "@rdm/testkit";
import type { Actors } from "./release-to-production.steps.js";
import type { Published, RunningSystem } from "./release-to-production.system.js";

const WAIT = { timeoutMs: 60_000 };

/** The body of a 200 on `path`; throws (a retry of waitFor) on any other status. */
export async function viewOf(system: RunningSystem, path: string) {
  const { status, body } = await system.view(path);
  if (status !== 200) throw new Error(`GET ${path}: ${status}`);
  return body;
}

/** Retries `check` (expectations on a fresh read) until it passes. */
export async function eventually(description: string, check: () => Promise<void>) {
  const passed = async () => {
    await check();
    return true;
  };
  // Once more after a timeout: its failure is the mismatch, not a pending attempt.
  await waitFor(passed, { ...WAIT, description }).catch(passed);
}

/** What the services answer about a release, in the overview's terms. */
async function releaseAsServicesSay({ rita, chris, cora, dana }: Actors, releaseId: string) {
  const release = (await rita.release.getRelease({ releaseId })).release;
  if (!release) throw new Error(`release ${releaseId} not found`);
  const gate = await rita.release.getReleaseGate({ releaseId });
  const changes = await Promise.all(
    release.linkedChangeRequestIds.map(async (changeRequestId) => {
      const change = (await chris.change.getChange({ changeRequestId })).change;
      return { changeRequestId, known: true, key: change?.key, state: ChangeState[change?.state ?? 0] };
    }),
  );
  const artifacts = await Promise.all(
    release.package.map(async (a) => {
      const artifact = (await cora.configuration.getArtifact({ artifactId: a.artifactId })).artifact;
      const [dmlStatus, integrity] = [ArtifactStatus[artifact?.status ?? 0], IntegrityStatus[artifact?.integrity ?? 0]];
      return { artifactId: a.artifactId, version: a.version, dmlStatus, integrity, deployable: dmlStatus === "ACTIVE" };
    }),
  );
  const { deployments } = await dana.deployment.listDeployments({ releaseId });
  return { release, gate, changes, artifacts, deployments };
}

/** A deployment as the overview shows it: state, strategy, and how far its steps got. */
function deploymentAsOverview(d: Awaited<ReturnType<typeof releaseAsServicesSay>>["deployments"][number]) {
  const count = (state: StepState) => d.steps.filter((s) => s.state === state).length;
  return {
    deploymentId: d.deploymentId,
    environment: d.environment,
    state: DeploymentState[d.state],
    strategy: DeploymentStrategyKind[d.strategy?.kind ?? 0],
    linkedChangeIds: d.linkedChangeIds,
    progress: expect.objectContaining({
      stepsTotal: d.steps.length,
      stepsCompleted: count(StepState.COMPLETED),
      stepsFailed: count(StepState.FAILED),
    }),
    steps: d.steps.map((s) => expect.objectContaining({ index: s.index, state: StepState[s.state] })),
  };
}

/** The release overview equals what the release, change, configuration and deployment services say. */
export async function expectOverview(system: RunningSystem, actors: Actors, releaseId: string) {
  return eventually(`the overview of ${releaseId}`, async () => {
    const said = await releaseAsServicesSay(actors, releaseId);
    const view = await viewOf(system, `/v1/releases/${releaseId}/overview`);
    const { release, gate } = said;
    expect(view).toMatchObject({
      version: Number(release.version),
      phase: ReleasePhase[release.phase],
      status: ReleaseStatus[release.status],
      gate: {
        open: gate.open,
        conditions: gate.conditions.map((c) => ({ rule: c.rule, subject: c.subject, met: c.met })),
      },
      approvals: release.approvals.map((a) => ({
        approvalId: a.approvalId,
        status: ApprovalStatus[a.status],
        votes: a.votes.map((v) => expect.objectContaining({ approver: v.approver, approved: v.approved })),
      })),
      tasks: release.tasks.map((t) => expect.objectContaining({ taskId: t.taskId, status: TaskStatus[t.status] })),
      linkedChanges: said.changes,
      package: said.artifacts,
      log: release.log.map((e) => expect.objectContaining({ entryId: e.entryId, text: e.text })),
    });
    const environments = [...new Set(said.deployments.map((d) => d.environment))].sort();
    expect(view.environments.map((e: { environment: string }) => e.environment).sort()).toEqual(environments);
    for (const environment of environments) {
      const inEnvironment = said.deployments.filter((d) => d.environment === environment);
      const shown = view.environments.find((e: { environment: string }) => e.environment === environment);
      expect(shown.deployments).toEqual(
        expect.arrayContaining(inEnvironment.map((d) => expect.objectContaining(deploymentAsOverview(d)))),
      );
      expect(shown.deployments).toHaveLength(inEnvironment.length);
    }
    const listed = await viewOf(system, `/v1/deployments?releaseId=${releaseId}&pageSize=200`);
    expect(
      listed.deployments.map((d: { deploymentId: string; state: string }) => [d.deploymentId, d.state]).sort(),
    ).toEqual(said.deployments.map((d) => [d.deploymentId, DeploymentState[d.state]]).sort());
  });
}

/** The gateway's environments equal the deployment service's definitions, in promotion order. */
export async function expectEnvironments(system: RunningSystem, { dana }: Actors) {
  return eventually("the environments", async () => {
    const { environments } = await dana.deployment.listEnvironments({});
    const promotedFrom = new Set(environments.map((e) => e.promotesFrom));
    const view = await viewOf(system, "/v1/environments");
    expect(view.environments).toMatchObject(
      [...environments]
        .sort((a, b) => a.promotionRank - b.promotionRank || a.name.localeCompare(b.name))
        .map((e) => ({
          environment: e.name,
          definition: {
            promotionRank: e.promotionRank,
            promotesFrom: e.promotesFrom,
            production: e.production ?? !promotedFrom.has(e.name),
            frozen: e.frozen,
            protection: { approvalGroup: e.protection?.approvalGroup ?? "", quorum: e.protection?.quorum ?? 0 },
            targetGroups: e.targetGroups.map((g) => ({ name: g.name, ciIds: g.ciIds })),
          },
        })),
    );
  });
}

/** Every event on the topics is in the audit trail once, with its actor, correlation and causation. */
export async function expectAuditOfEverything(system: RunningSystem) {
  const trail = (e: { id?: string; eventId?: string; type?: string; eventType?: string } & Partial<Published>) => [
    e.eventId ?? e.id,
    e.eventType ?? e.type,
    e.actor,
    e.correlationId,
    e.causationId,
  ];
  const byId = (a: unknown[], b: unknown[]) => String(a[0]).localeCompare(String(b[0]));
  const expected = [...new Map(system.published().map((e) => [e.id, trail(e)])).values()].sort(byId);
  return eventually("every event in the audit trail", async () => {
    const all = await auditPages(system, "", 500);
    expect(all.map(trail).sort(byId)).toEqual(expected);
  });
}

/** Every page of `/v1/audit?<filter>` of `limit` entries, following nextAfter. */
export async function auditPages(system: RunningSystem, filter: string, limit: number) {
  // biome-ignore lint/suspicious/noExplicitAny: audit entries as the route's schema gives them
  const entries: any[] = [];
  let after: number | undefined;
  for (;;) {
    const cursor = after === undefined ? "" : `&after=${after}`;
    const page = await viewOf(system, `/v1/audit?limit=${limit}${filter ? `&${filter}` : ""}${cursor}`);
    entries.push(...page.entries);
    if (page.nextAfter === null || page.nextAfter === undefined || page.entries.length === 0) return entries;
    after = page.nextAfter;
  }
}

/**
 * Every combined view of the flow as it is now: overviews, calendar, inventory, KPIs of both
 * environments, and the audit trail by event id (a rebuild numbers its entries anew).
 */
export async function viewsNow(system: RunningSystem, releaseIds: string[], range: string) {
  const audit = (await auditPages(system, "", 500))
    .map(({ seq: _, ...entry }) => entry)
    .sort((a, b) => a.eventId.localeCompare(b.eventId));
  return {
    overviews: await Promise.all(releaseIds.map((id) => viewOf(system, `/v1/releases/${id}/overview`))),
    calendar: await viewOf(system, `/v1/calendar?${range}`),
    inventory: await viewOf(system, "/v1/inventory"),
    environments: await viewOf(system, "/v1/environments"),
    deployments: await viewOf(system, "/v1/deployments?pageSize=200"),
    kpis: await Promise.all(
      ["production", "test"].map((environment) =>
        viewOf(system, `/v1/kpis?environment=${environment}&period=month&at=${new Date().toISOString()}`),
      ),
    ),
    audit,
  };
}
