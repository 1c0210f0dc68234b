// What the deployment service accepts, every consumer of its topic accepts (property-based,
// fast-check): environments, plans and an executor's reports with arbitrary text (any Unicode,
// now and then what the API refuses) go through the real deployment service over gRPC, each
// accepted or refused with INVALID_ARGUMENT; the deployments run to their outcome (a failed
// verification rolls back, or its rollback is given up), and every event the service appended is handled, not dead-lettered,
// by the gateway's projections, the configuration service's baselines and the release service's
// reactions.
import { randomUUID } from "node:crypto";
import { createGrpcClient } from "@rdm/grpc";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeploymentStrategyKind, StepKind, TargetOutcome } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import fc from "fast-check";
import { acceptedOrInvalid, eventIds, everyEventHandled, idText, text } from "./accepted-input.js";
import { e2eStack, publishReleaseInDeployment, type StartedService, verifiedArtifact } from "./harness.js";

const stack = e2eStack("e2e-accepted-deployment");
let deployment: StartedService;
let configuration: StartedService;
let releaseDatabase: string;
let gatewayDatabase: string;
let producer: Awaited<ReturnType<typeof stack.producer>>;

beforeAll(async () => {
  const [release, gateway] = await Promise.all([stack.release(), stack.gateway()]);
  [deployment, configuration, producer] = await Promise.all([
    stack.deployment(),
    stack.configuration(),
    stack.producer(),
  ]);
  releaseDatabase = release.databaseUrl;
  gatewayDatabase = gateway.databaseUrl;
}, 120_000);

afterAll(() => stack.stop());

const TERMINAL = new Set([DeploymentState.SUCCEEDED, DeploymentState.ROLLED_BACK, DeploymentState.FAILED]);

const cases = fc.record({
  groupName: text(1, 20),
  ciIds: fc.uniqueArray(idText(1, 30), { minLength: 1, maxLength: 3 }),
  labels: fc.uniqueArray(text(1, 12), { maxLength: 2 }),
  executorId: text(1, 30),
  message: text(0, 80),
  logLines: fc.array(text(0, 60), { maxLength: 3 }),
  check: text(1, 30),
  detail: text(0, 80),
  verified: fc.boolean(),
  // A failed verification's rollback given up with this reason rather than run.
  abandonReason: fc.option(text(1, 80)),
});

test("arbitrary accepted deployment input reaches every consumer; refusals are INVALID_ARGUMENT", async () => {
  const deployer = createGrpcClient(DeploymentService, deployment.address, {
    token: await stack.token("dana", ["deployer", "release-manager"]),
  });
  const executor = createGrpcClient(DeploymentService, deployment.address, {
    token: await stack.token("agent", ["executor"]),
  });
  const dml = createGrpcClient(ConfigurationService, configuration.address, {
    token: await stack.token("carla", ["config-manager"]),
  });
  let finished = 0;
  try {
    // One verified artifact for every plan: the gates read it from the configuration topic.
    const { artifactId, name } = await verifiedArtifact(dml, uniqueId("api"), "1.0.0");

    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const environment = uniqueId("fuzz");
        // A host is one environment's: each run's arbitrary ids are made its own.
        const ciIds = c.ciIds.map((ciId) => `${ciId}@${environment}`);
        const registered = await acceptedOrInvalid(
          deployer.registerEnvironment({
            requestId: randomUUID(),
            environment: {
              name: environment,
              promotionRank: 1,
              targetGroups: [{ name: c.groupName, ciIds }],
              executorLabels: c.labels,
            },
          }),
        );
        if (!registered) return;
        const releaseId = randomUUID();
        await publishReleaseInDeployment(producer, stack.topicPrefix, releaseId);
        const { deployment: planned } = await deployer.planDeployment({
          requestId: randomUUID(),
          releaseId,
          environment,
          artifacts: [{ artifactId, name, version: "1.0.0" }],
          strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
        });
        const deploymentId = planned?.deploymentId as string;
        // The gates read the release and artifact facts as their consumer has seen them so far.
        await waitFor(() => deployer.startDeployment({ requestId: randomUUID(), deploymentId }), {
          timeoutMs: 30_000,
          description: "gates met once the upstream facts are consumed",
        });
        await runToOutcome({ executor, deployer }, environment, deploymentId, c);
        finished++;
      }),
      { numRuns: 12 },
    );
  } finally {
    deployer.close();
    executor.close();
    dml.close();
  }
  // Some deployments must have run to their outcome, or the property says nothing about consumers.
  expect(finished).toBeGreaterThan(0);

  const appended = await eventIds(deployment.databaseUrl);
  await everyEventHandled([
    ["gateway", gatewayDatabase, appended],
    ["configuration service (baselines)", configuration.databaseUrl, appended],
    ["release service (deployment reactions)", releaseDatabase, appended],
  ]);
}, 240_000);

type Case = typeof cases extends fc.Arbitrary<infer T> ? T : never;
type Client = ReturnType<typeof createGrpcClient<(typeof DeploymentService)["method"]>>;

/**
 * Works the deployment's steps as an executor whose id, labels, reports and verification details
 * are the case's (replaced by plain ones when refused), until the deployment is over.
 */
async function runToOutcome(
  { executor, deployer }: { executor: Client; deployer: Client },
  environment: string,
  deploymentId: string,
  c: Case,
) {
  const claim = async () => {
    const request = { environments: [environment], labels: c.labels, leaseSeconds: 60 };
    const claimed = await acceptedOrInvalid(
      executor.claimStep({ requestId: randomUUID(), executorId: c.executorId, ...request }),
    );
    const answer =
      claimed ?? (await executor.claimStep({ requestId: randomUUID(), executorId: "agent-1", ...request }));
    return answer.assignment;
  };
  // Each claim waits for a step to be ready (or the deployment to be over): no step is skipped.
  const next = () =>
    waitFor(
      async () => {
        const { deployment: current } = await deployer.getDeployment({ deploymentId });
        if (current && TERMINAL.has(current.state)) return "over" as const;
        const assignment = await claim();
        return assignment?.step ? { assignment, step: assignment.step } : undefined;
      },
      { timeoutMs: 30_000, description: `the next step of ${deploymentId}` },
    );
  for (let round = 0; round < 10; round++) {
    const claimed = await next();
    if (claimed === "over") return;
    const { assignment, step } = claimed;
    const lease = { deploymentId, stepIndex: step.index, fencingToken: assignment.fencingToken };
    const verify = step.kind === StepKind.VERIFY;
    for (const ciId of step.targetCiIds) {
      const report = {
        lease,
        ciId,
        outcome: TargetOutcome.SUCCEEDED,
        verifications: verify ? [{ check: c.check, passed: c.verified, detail: c.detail }] : [],
      };
      const reported =
        (await acceptedOrInvalid(
          executor.reportTargetProgress({
            requestId: randomUUID(),
            ...report,
            message: c.message,
            logLines: c.logLines,
          }),
        )) ??
        (await executor.reportTargetProgress({
          requestId: randomUUID(),
          ...report,
          verifications: verify ? [{ check: "smoke", passed: c.verified, detail: "" }] : [],
        }));
      // A report that started the rollback ends the forward step's lease.
      if (reported.deployment?.state === DeploymentState.ROLLING_BACK && !step.rollback) break;
    }
    const { deployment: after } = await deployer.getDeployment({ deploymentId });
    if (after?.state === DeploymentState.ROLLING_BACK && c.abandonReason !== null) {
      const abandon = (reason: string) => deployer.abandonRollback({ requestId: randomUUID(), deploymentId, reason });
      if (!(await acceptedOrInvalid(abandon(c.abandonReason)))) await abandon("given up");
      return;
    }
    if (after?.state === DeploymentState.ROLLING_BACK && !step.rollback) continue;
    await executor.completeStep({ requestId: randomUUID(), lease });
  }
  throw new Error(`deployment ${deploymentId} did not reach an outcome in 10 rounds`);
}
