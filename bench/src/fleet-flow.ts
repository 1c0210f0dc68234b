// One release of the fleet benchmark through the whole flow, as test/e2e/release-to-production
// walks it through public interfaces: artifact in the DML and CI in the CMDB, a change authorized
// by the CAB, the release walked through its phases and approvals, deployed through every
// environment in promotion order by the reference executors, verified, reviewed and closed.
import { createHash, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Role } from "@rdm/auth";
import { mintDevToken } from "@rdm/auth";
import { createGrpcClient } from "@rdm/grpc";
import { ChangeImpact, ChangeType, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleasePhase, ReleaseType, ReviewOutcome, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { waitFor } from "@rdm/testkit";
import type { DevStack } from "./fleet-stack.js";

const WAIT = { timeoutMs: 600_000, intervalMs: 250 };
const TERMINAL = [DeploymentState.SUCCEEDED, DeploymentState.FAILED, DeploymentState.ROLLED_BACK];

/** gRPC clients of the four services acting as one subject; every request id goes through `sent`. */
export async function clientsFor(stack: DevStack, subject: string, roles: Role[], groups: string[] = []) {
  const token = await mintDevToken({
    subject,
    roles,
    groups,
    secret: stack.secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "2h",
  });
  const options = { token };
  return {
    token,
    release: createGrpcClient(ReleaseService, stack.addresses.release, options),
    change: createGrpcClient(ChangeService, stack.addresses.change, options),
    configuration: createGrpcClient(ConfigurationService, stack.addresses.configuration, options),
    deployment: createGrpcClient(DeploymentService, stack.addresses.deployment, options),
  };
}

export type Clients = Awaited<ReturnType<typeof clientsFor>>;
export interface Cast {
  /** Release manager, coordinator, change manager, config manager and deployer. */
  olivia: Clients;
  ann: Clients; // CAB
  ben: Clients; // CAB
  /** A fresh request id, reported as sent now (for visibility). */
  rid(): { requestId: string };
}

/** The chain `fleet-1 → … → fleet-<m>`; the last is production (nothing promotes from it), CAB-protected. */
export async function registerEnvironments(cast: Cast, m: number): Promise<string[]> {
  const names = Array.from({ length: m }, (_, i) => `fleet-${i + 1}`);
  for (const [i, name] of names.entries()) {
    const last = i === m - 1;
    await cast.olivia.deployment.registerEnvironment({
      ...cast.rid(),
      environment: {
        name,
        promotionRank: 10 + i,
        promotesFrom: names[i - 1] ?? "",
        targetGroups: [{ name: "rest", ciIds: last ? [`${name}-app-1`, `${name}-app-2`] : [`${name}-app-1`] }],
        protection: last ? { approvalGroup: "cab", quorum: 1 } : undefined,
      },
    });
  }
  return names;
}

async function advance(cast: Cast, releaseId: string, to: ReleasePhase) {
  const { release } = await cast.olivia.release.getRelease({ releaseId });
  for (const task of release?.tasks ?? []) {
    const current = task.phase === release?.phase && task.phaseEntry === release.phaseEntry;
    if (current && task.required && task.status !== TaskStatus.DONE)
      await cast.olivia.release.completeReleaseTask({ ...cast.rid(), releaseId, taskId: task.taskId });
  }
  const advanced = await cast.olivia.release.advanceReleasePhase({ ...cast.rid(), releaseId });
  if (advanced.release?.phase !== to) throw new Error(`release ${releaseId} in ${advanced.release?.phase}, not ${to}`);
}

async function authorizedChange(cast: Cast, ciId: string, title: string, production: string) {
  const { olivia, ann, ben, rid } = cast;
  const { change } = await olivia.change.raiseChange({
    ...rid(),
    type: ChangeType.NORMAL,
    title,
    justification: "fleet benchmark",
    affectedCiIds: [ciId],
    environments: [production],
    implementationPlan: "through every environment",
    backoutPlan: "roll back to the last baseline",
  });
  const changeRequestId = change?.changeRequestId as string;
  await olivia.change.submitChange({ ...rid(), changeRequestId });
  const assessment = { impact: ChangeImpact.MEDIUM, urgency: ChangeUrgency.MEDIUM, requiredApprovals: 2 };
  await olivia.change.assessChange({ ...rid(), changeRequestId, ...assessment });
  await ann.change.approveChange({ ...rid(), changeRequestId, comment: "ok" });
  await ben.change.approveChange({ ...rid(), changeRequestId, comment: "ok" });
  const now = Date.now();
  const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 });
  const window = { start: ts(now - 3_600_000), end: ts(now + 4 * 3_600_000) };
  await olivia.change.scheduleChange({ ...rid(), changeRequestId, window });
  return changeRequestId;
}

/** CI, verified artifact, authorized change, release walked to DEPLOYMENT with its package. */
async function releaseInDeployment(cast: Cast, index: number, production: string) {
  const { olivia, ann, ben, rid } = cast;
  const name = `fleet-svc-${index}-${randomUUID().slice(0, 8)}`;
  const ci = await olivia.configuration.registerConfigurationItem({
    ...rid(),
    name,
    type: CiType.SERVICE,
    owner: "team-fleet",
  });
  const ciId = ci.item?.ciId as string;
  const pkg = { name, version: "1.0.0", sha256: createHash("sha256").update(name).digest("hex") };
  const { artifact } = await olivia.configuration.registerArtifact({ ...rid(), ...pkg, mediaUri: `s3://dml/${name}` });
  const artifactId = artifact?.artifactId as string;
  await olivia.configuration.verifyArtifact({ ...rid(), artifactId, sha256: pkg.sha256 });
  const registered = await olivia.release.registerRelease({
    ...rid(),
    title: `Fleet ${index}`,
    type: ReleaseType.MINOR,
    owner: "owen",
    coordinator: "olivia",
  });
  const releaseId = registered.release?.releaseId as string;
  const changeId = await authorizedChange(cast, ciId, `Fleet ${index}`, production);
  await olivia.release.linkChangeRequest({ ...rid(), releaseId, changeRequestId: changeId });
  await advance(cast, releaseId, ReleasePhase.ASSESSMENT);
  await advance(cast, releaseId, ReleasePhase.PLANNING);
  await advance(cast, releaseId, ReleasePhase.APPROVAL);
  const requested = await olivia.release.requestReleaseApproval({ ...rid(), releaseId, approverGroup: "cab" });
  const approvalId = requested.release?.approvals.at(-1)?.approvalId as string;
  await ann.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  await ben.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  // The release learns of the change's authorization from the change topic.
  await waitFor(async () => (await olivia.release.getReleaseGate({ releaseId })).open, WAIT);
  await advance(cast, releaseId, ReleasePhase.BUILD_AND_TEST);
  await olivia.release.attachReleaseArtifact({ ...rid(), releaseId, artifactId, ...pkg, configurationItemId: ciId });
  await advance(cast, releaseId, ReleasePhase.DEPLOYMENT);
  return { releaseId, changeId, artifact: { artifactId, name, version: pkg.version } };
}

/** Plans, approves when protected, starts (again while a gate waits for news) and waits for the end. */
async function deploy(cast: Cast, released: Awaited<ReturnType<typeof releaseInDeployment>>, environment: string) {
  const { olivia, ann, rid } = cast;
  const { deployment } = await olivia.deployment.planDeployment({
    ...rid(),
    releaseId: released.releaseId,
    environment,
    artifacts: [released.artifact],
    strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
    linkedChangeIds: [released.changeId],
  });
  const deploymentId = deployment?.deploymentId as string;
  if (deployment?.state === DeploymentState.AWAITING_APPROVAL)
    await ann.deployment.approveDeployment({ ...rid(), deploymentId, comment: "ok" });
  await waitFor(() => olivia.deployment.startDeployment({ ...rid(), deploymentId }), WAIT);
  const ended = await waitFor(async () => {
    const current = (await olivia.deployment.getDeployment({ deploymentId })).deployment;
    return current && TERMINAL.includes(current.state) ? current : undefined;
  }, WAIT);
  if (ended.state !== DeploymentState.SUCCEEDED)
    throw new Error(`deployment ${deploymentId} to ${environment}: ${DeploymentState[ended.state]}`);
}

/** Milliseconds since the flow started at which the release succeeded in production, and was closed. */
export interface FlowTimes {
  production: number;
  closed: number;
}

export async function releaseThroughFleet(
  cast: Cast,
  index: number,
  environments: string[],
  startedAt: number,
): Promise<FlowTimes> {
  const production = environments.at(-1) as string;
  const released = await releaseInDeployment(cast, index, production);
  for (const environment of environments) await deploy(cast, released, environment);
  const inProduction = performance.now() - startedAt;
  const { releaseId } = released;
  const { olivia, rid } = cast;
  await waitFor(
    async () => (await olivia.release.getRelease({ releaseId })).release?.phase === ReleasePhase.VERIFICATION,
    WAIT,
  );
  await advance(cast, releaseId, ReleasePhase.REVIEW);
  const review = { outcome: ReviewOutcome.SUCCESSFUL, lessonsLearned: "none" };
  await olivia.release.recordPostImplementationReview({ ...rid(), releaseId, ...review });
  await olivia.release.closeRelease({ ...rid(), releaseId });
  return { production: inProduction, closed: performance.now() - startedAt };
}
