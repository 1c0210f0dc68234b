// The steps of release-to-production.test.ts through the services' public gRPC interfaces: the
// CMDB and DML, a change authorized by the CAB, a release walked to its deployment phase, and a
// deployment run to its end by the reference executor (promoting each canary stage).
import { createHash, randomUUID } from "node:crypto";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  type Release,
  ReleasePhase,
  ReleaseType,
  RiskLevel,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { waitFor } from "@rdm/testkit";
import { authorizedChange } from "./harness.js";
import type { Clients, RunningSystem } from "./release-to-production.system.js";

/** The people of the flow, each with gRPC clients of every service. */
export interface Actors {
  rita: Clients; // release manager; owns the environments
  carl: Clients; // release coordinator
  chris: Clients; // change manager
  ann: Clients; // on the CAB (release and change)
  ben: Clients;
  dana: Clients; // deployer
  cora: Clients; // configuration manager
}

export async function actorsOf(system: RunningSystem): Promise<Actors> {
  return {
    rita: await system.clients("rita", ["release-manager"]),
    carl: await system.clients("carl", ["release-coordinator"]),
    chris: await system.clients("chris", ["change-manager"]),
    ann: await system.clients("ann", ["approver"], ["cab"]),
    ben: await system.clients("ben", ["approver"], ["cab"]),
    dana: await system.clients("dana", ["deployer"]),
    cora: await system.clients("cora", ["config-manager"]),
  };
}

let system: RunningSystem;
let rita: Clients;
let carl: Clients;
let chris: Clients;
let ann: Clients;
let ben: Clients;
let dana: Clients;
let cora: Clients;
let checkpoint: (releaseId: string) => Promise<void>;

/**
 * The system and actors every step uses (one flow per test file); `check` runs after every
 * command on a release (e.g. the gateway's views compared with the services' answers).
 */
export function useFlow(running: RunningSystem, actors: Actors, check: (releaseId: string) => Promise<void>) {
  system = running;
  checkpoint = check;
  ({ rita, carl, chris, ann, ben, dana, cora } = actors);
}

const rid = () => ({ requestId: randomUUID() });
export const WAIT = { timeoutMs: 60_000 };
const HOUR = 3_600_000;
/** The window of every change, deployment and release of the flow: it holds the whole test run. */
const NOW = Math.floor(Date.now() / 1000) * 1000;
export const WINDOW = { start: new Date(NOW - HOUR), end: new Date(NOW + 4 * HOUR) };
const ts = (d: Date) => ({ seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: 0 });
const window = { start: ts(WINDOW.start), end: ts(WINDOW.end) };

const ci = async (name: string, type: CiType) =>
  (await cora.configuration.registerConfigurationItem({ ...rid(), name, type, owner: "team-checkout" })).item
    ?.ciId as string;

/** An artifact registered in the DML and verified against its checksum. */
export async function artifactInDml(version: string) {
  const sha256 = createHash("sha256").update(`checkout ${version}`).digest("hex");
  const { artifact } = await cora.configuration.registerArtifact({
    ...rid(),
    name: "checkout",
    version,
    sha256,
    sizeBytes: 1024n,
    mediaUri: `s3://dml/checkout-${version}.tgz`,
  });
  const artifactId = artifact?.artifactId as string;
  await cora.configuration.verifyArtifact({ ...rid(), artifactId, sha256 });
  return { artifactId, name: "checkout", version, sha256 };
}

export async function getRelease(releaseId: string): Promise<Release> {
  return (await rita.release.getRelease({ releaseId })).release as Release;
}

async function completeTasks(releaseId: string) {
  const release = await getRelease(releaseId);
  for (const task of release.tasks) {
    const current = task.phase === release.phase && task.phaseEntry === release.phaseEntry;
    if (current && task.required && task.status !== TaskStatus.DONE)
      await carl.release.completeReleaseTask({ ...rid(), releaseId, taskId: task.taskId });
  }
}

export async function advance(releaseId: string, to: ReleasePhase) {
  await completeTasks(releaseId);
  const { release } = await carl.release.advanceReleasePhase({ ...rid(), releaseId });
  expect(release?.phase).toBe(to);
  await checkpoint(releaseId);
}

/** A normal change on the service's CI in production, authorized by the CAB and scheduled around now. */
const authorizedProductionChange = (serviceCi: string, version: string) =>
  authorizedChange(
    chris,
    [ann, ben],
    {
      title: `Checkout ${version}`,
      justification: "new checkout flow",
      affectedCiIds: [serviceCi],
      environments: ["production"],
      implementationPlan: "canary in production",
      backoutPlan: "roll back to the last known good baseline",
    },
    window,
  );

/** A release with its change and package, walked through the CAB to its deployment phase. */
export async function releaseInDeployment(serviceCi: string, pkg: Awaited<ReturnType<typeof artifactInDml>>) {
  const { release } = await rita.release.registerRelease({
    ...rid(),
    title: `Checkout ${pkg.version}`,
    description: "checkout release",
    type: ReleaseType.MINOR,
    category: "checkout",
    owner: "olivia",
    coordinator: "carl",
    stakeholders: ["sre-checkout"],
    risk: RiskLevel.MEDIUM,
    plannedWindow: window,
  });
  const releaseId = release?.releaseId as string;
  await checkpoint(releaseId);
  const changeId = await authorizedProductionChange(serviceCi, pkg.version);
  await carl.release.linkChangeRequest({ ...rid(), releaseId, changeRequestId: changeId });
  await checkpoint(releaseId);
  await advance(releaseId, ReleasePhase.ASSESSMENT);
  await advance(releaseId, ReleasePhase.PLANNING);
  await advance(releaseId, ReleasePhase.APPROVAL);
  const requested = await carl.release.requestReleaseApproval({ ...rid(), releaseId, approverGroup: "cab" });
  const approvalId = requested.release?.approvals.at(-1)?.approvalId as string;
  await checkpoint(releaseId);
  await ann.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  await checkpoint(releaseId);
  await ben.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  // The release learns of the change's authorization from the change topic.
  await waitFor(async () => (await rita.release.getReleaseGate({ releaseId })).open, {
    ...WAIT,
    description: "the release's approval gate open",
  });
  await advance(releaseId, ReleasePhase.BUILD_AND_TEST);
  await carl.release.attachReleaseArtifact({ ...rid(), releaseId, ...pkg, configurationItemId: serviceCi });
  await checkpoint(releaseId);
  await advance(releaseId, ReleasePhase.DEPLOYMENT);
  return { releaseId, changeId };
}

export const CANARY = {
  kind: DeploymentStrategyKind.CANARY,
  canaryStages: [{ weightPercent: 50, manualPromotion: true }, { weightPercent: 100 }],
};
export const TERMINAL = [DeploymentState.SUCCEEDED, DeploymentState.ROLLED_BACK, DeploymentState.FAILED];

/** Plans and starts a deployment (its gates pass once the upstream facts arrived), runs it to its end. */
export async function deploy(
  releaseId: string,
  changeId: string,
  environment: string,
  pkg: Awaited<ReturnType<typeof artifactInDml>>,
  strategy: object,
) {
  const { deployment } = await dana.deployment.planDeployment({
    ...rid(),
    releaseId,
    environment,
    artifacts: [{ artifactId: pkg.artifactId, name: pkg.name, version: pkg.version }],
    strategy,
    window,
    linkedChangeIds: [changeId],
  });
  const deploymentId = deployment?.deploymentId as string;
  await checkpoint(releaseId);
  await waitFor(() => dana.deployment.startDeployment({ ...rid(), deploymentId }), {
    ...WAIT,
    description: `the gates of ${environment}`,
  });
  await checkpoint(releaseId);
  const promoted: number[] = [];
  const ended = await waitFor(
    async () => {
      await system.executor.runOnce();
      const current = (await dana.deployment.getDeployment({ deploymentId })).deployment;
      if (current?.awaitingPromotion) {
        promoted.push(current.steps.findIndex((s) => s.promotionAfter));
        await rita.deployment.promoteDeployment({ ...rid(), deploymentId, comment: "canary healthy" });
        await checkpoint(releaseId);
      }
      return current && TERMINAL.includes(current.state) ? current : undefined;
    },
    { ...WAIT, description: `deployment to ${environment} ended` },
  );
  return { deploymentId, state: ended.state, promoted };
}

export const baselineOf = async (environment: string) =>
  (await cora.configuration.getBaseline({ environment })).baseline?.entries.map((e) => [e.ciId, e.artifactVersion]);

/** The CMDB items of the checkout service and its hosts, and the environments test and production. */
export async function cmdbAndEnvironments() {
  const service = await ci("checkout", CiType.SERVICE);
  const testHost = await ci("checkout-test-1", CiType.HOST);
  const [prodA, prodB] = [await ci("checkout-prod-a", CiType.HOST), await ci("checkout-prod-b", CiType.HOST)];
  await rita.deployment.registerEnvironment({
    ...rid(),
    environment: { name: "test", promotionRank: 2, targetGroups: [{ name: "rest", ciIds: [testHost] }] },
  });
  await rita.deployment.registerEnvironment({
    ...rid(),
    environment: {
      name: "production",
      promotionRank: 4,
      promotesFrom: "test",
      targetGroups: [{ name: "rest", ciIds: [prodA, prodB] }],
    },
  });
  return { service, testHost, prodA, prodB };
}
