import { randomUUID } from "node:crypto";
import { type CallContext, InvalidArgument } from "@rdm/grpc";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import type pg from "pg";
import { evaluateGates, freezeInForce, freezeWindowsInForce } from "../domain/index.js";
import { loadGateFacts } from "../store/gate-facts.js";
import { findEnvironment, lockEnvironmentOutcomes, runningDeployment } from "../store/tables.js";
import { notFound, runDeploymentCommand } from "./commands.js";
import type { ApiContext, Handlers } from "./deployment-service.js";

const M = DeploymentService.method;

async function environmentOf(tx: pg.PoolClient, name: string) {
  const environment = await findEnvironment(tx, name);
  if (!environment) throw notFound("environment", name);
  return environment;
}

/** Plan, approve, start (with the gates), pause, resume, promote, cancel and roll back. */
export function deploymentCommandHandlers({ handler }: ApiContext) {
  const simple = <K extends Simple>(method: K) => simpleCommandHandler(handler, method);

  return {
    async planDeployment(request, ctx) {
      const strategy = request.strategy;
      if (!strategy) throw new InvalidArgument([{ field: "strategy", description: "required" }]);
      const deploymentId = randomUUID();
      return runDeploymentCommand(handler, ctx, M.planDeployment, request, {
        output: M.planDeployment.output,
        streamId: deploymentId,
        command: async (_state, _decision, tx) => ({
          kind: "planDeployment",
          deploymentId,
          releaseId: request.releaseId.toLowerCase(),
          environment: await environmentOf(tx, request.environment),
          artifacts: request.artifacts,
          strategy,
          window: request.window,
          linkedChangeIds: request.linkedChangeIds.map((id) => id.toLowerCase()),
        }),
      });
    },

    async approveDeployment(request, ctx) {
      return runDeploymentCommand(handler, ctx, M.approveDeployment, request, {
        output: M.approveDeployment.output,
        streamId: request.deploymentId.toLowerCase(),
        command: (state, decision) => ({
          kind: "approveDeployment",
          approver: decision.actor,
          approverGroups: [...decision.groups],
          approvalGroup: state.deployment?.approvalGroup ?? "",
          comment: request.comment,
        }),
      });
    },

    async startDeployment(request, ctx) {
      const byChangeManager = ctx.principal.roles.includes("change-manager");
      return runDeploymentCommand(handler, ctx, M.startDeployment, request, {
        output: M.startDeployment.output,
        streamId: request.deploymentId.toLowerCase(),
        command: async (state, decision, tx) => {
          const deployment = state.deployment;
          if (!deployment) throw notFound("deployment", request.deploymentId);
          // Starts and rollbacks in one environment take turns, so each sees what the other ran.
          await lockEnvironmentOutcomes(tx, deployment.environment);
          const environment = await environmentOf(tx, deployment.environment);
          const facts = await loadGateFacts(tx, deployment, environment, {
            now: decision.now,
            freezeOverrideJustification: request.freezeOverrideJustification,
            byChangeManager,
          });
          const overridden = freezeInForce(facts);
          return {
            kind: "startDeployment",
            gateViolations: evaluateGates(facts),
            baseline: environment.baseline,
            liveColour: environment.liveColour,
            freezeOverrideJustification: overridden ? request.freezeOverrideJustification : "",
            overriddenFreezeWindowIds: freezeWindowsInForce(facts).map((window) => window.freezeWindowId),
            now: decision.now,
          };
        },
      });
    },

    pauseDeployment: simple("pauseDeployment"),
    resumeDeployment: simple("resumeDeployment"),
    promoteDeployment: simple("promoteDeployment"),
    cancelDeployment: simple("cancelDeployment"),

    async rollbackDeployment(request, ctx) {
      return runDeploymentCommand(handler, ctx, M.rollbackDeployment, request, {
        output: M.rollbackDeployment.output,
        streamId: request.deploymentId.toLowerCase(),
        command: async (state, _decision, tx) => {
          const deployment = state.deployment;
          if (!deployment) throw notFound("deployment", request.deploymentId);
          await lockEnvironmentOutcomes(tx, deployment.environment);
          const environment = await environmentOf(tx, deployment.environment);
          return {
            kind: "rollbackDeployment",
            reason: request.reason,
            fast: request.fast,
            environmentBaseline: {
              deploymentId: environment.baselineDeploymentId,
              artifactIds: environment.baseline.map((a) => a.artifactId),
            },
            runningDeploymentId: await runningDeployment(tx, deployment.environment, deployment.deploymentId),
          };
        },
      });
    },
  } satisfies Partial<Handlers>;
}

type Simple = "pauseDeployment" | "resumeDeployment" | "promoteDeployment" | "cancelDeployment";

/** A command that needs nothing but the request: pause, resume, promote, cancel. */
function simpleCommandHandler<K extends Simple>(handler: ApiContext["handler"], method: K): Handlers[K] {
  return (async (
    request: { requestId: string; deploymentId: string; reason?: string; comment?: string },
    ctx: CallContext,
  ) =>
    runDeploymentCommand(handler, ctx, M[method], request as never, {
      output: M[method].output,
      streamId: request.deploymentId.toLowerCase(),
      command: () => {
        switch (method) {
          case "pauseDeployment":
            return { kind: "pauseDeployment", reason: request.reason ?? "" };
          case "resumeDeployment":
            return { kind: "resumeDeployment" };
          case "promoteDeployment":
            return { kind: "promoteDeployment", comment: request.comment ?? "" };
          default:
            return { kind: "cancelDeployment", reason: request.reason ?? "" };
        }
      },
    })) as unknown as Handlers[K];
}
