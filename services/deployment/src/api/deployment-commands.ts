import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { hasAnyRole } from "@rdm/auth";
import { isRuleViolation } from "@rdm/command-handler";
import { type CallContext, InvalidArgument } from "@rdm/grpc";
import type { Deployment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  CheckDeploymentGatesResponseSchema,
  DeploymentService,
} from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import {
  allTargets,
  beginsAt,
  type DeploymentAggregateState,
  type DeploymentCommand,
  decide,
  evaluateGates,
  freezeInForce,
  freezeWindowsInForce,
  type RuleDetail,
} from "../domain/index.js";
import { loadGateFacts, releaseAbandoned } from "../store/gate-facts.js";
import { findEnvironment, lockEnvironmentOutcomes, runningDeployment } from "../store/tables.js";
import { deployments } from "./aggregates.js";
import { notFound, runDeploymentCommand } from "./commands.js";
import type { ApiContext, Handlers } from "./deployment-service.js";

const M = DeploymentService.method;

/** Who may start a deployment (admin always may): its planners, and a change-manager (freeze overrides). */
export const START_ROLES = ["deployer", "release-manager", "change-manager"] as const;

async function environmentOf(tx: pg.PoolClient, name: string) {
  const environment = await findEnvironment(tx, name);
  if (!environment) throw notFound("environment", name);
  return environment;
}

type Turn = "take turn" | "check only";

/**
 * The deployment and its environment, the environment's turn taken unless only checked: starts
 * and rollbacks in one environment take turns (its outcome row stays locked until the commit), so
 * each sees what the other ran; a check records nothing, so it takes none.
 */
async function inEnvironmentTurn(
  deploymentId: string,
  state: DeploymentAggregateState,
  tx: pg.PoolClient,
  turn: Turn = "take turn",
) {
  const deployment = state.deployment;
  if (!deployment) throw notFound("deployment", deploymentId);
  if (turn === "take turn") await lockEnvironmentOutcomes(tx, deployment.environment);
  return { deployment, environment: await environmentOf(tx, deployment.environment) };
}

/**
 * A start, with the gates evaluated on what the read models know now, as they will stand when the
 * deployment begins: now, or its window's start when that is ahead (the freezes and change windows
 * of that time). They are checked again then (gatesAsItBegins). `turn`: see inEnvironmentTurn
 * (CheckDeploymentGates only checks).
 */
async function startCommand(
  request: { deploymentId: string; freezeOverrideJustification: string },
  byChangeManager: boolean,
  state: DeploymentAggregateState,
  now: Date,
  tx: pg.PoolClient,
  turn: Turn = "take turn",
): Promise<DeploymentCommand> {
  const { deployment, environment } = await inEnvironmentTurn(request.deploymentId, state, tx, turn);
  const facts = await loadGateFacts(tx, deployment, environment, {
    now: beginsAt(deployment, now),
    freezeOverrideJustification: request.freezeOverrideJustification,
    byChangeManager,
  });
  return {
    kind: "startDeployment",
    gateViolations: evaluateGates(facts),
    // On the targets it has now (the gates refuse a plan that deploys to one taken out since):
    // what the stored baseline keeps of targets taken out would grow every start of an
    // environment whose hosts are replaced.
    baseline: environment.baseline,
    liveColour: environment.liveColour,
    freezeOverrideJustification: freezeInForce(facts) ? request.freezeOverrideJustification : "",
    overriddenFreezeWindowIds: freezeWindowsInForce(facts).map((window) => window.freezeWindowId),
    changeRequestIds: facts.changes.map((change) => change.changeId),
    now,
  };
}

/** Refusals of a start that no later change of the gates lifts: the deployment must be planned again. */
const FINAL_REFUSALS = new Set(["deployment.state", "deployment.window_passed"]);

/**
 * What a start by this caller would refuse now: the decider's refusal of the start command a
 * StartDeployment would give it, its conditions listed; none when it would schedule the deployment.
 */
async function gatesCheck(
  api: ApiContext,
  request: { deploymentId: string; freezeOverrideJustification: string },
  byChangeManager: boolean,
): Promise<{ violations: RuleDetail[]; beginsAt?: Date | undefined }> {
  const now = api.clock();
  const client = await api.pool.connect();
  try {
    // One snapshot of the deployment and the read models, as a start's transaction reads them.
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const { state } = await api.handler.load(client, { aggregate: deployments, streamId: request.deploymentId });
    if (!state.deployment) throw notFound("deployment", request.deploymentId);
    const begins = beginsAt(state.deployment, now);
    const command = await startCommand(request, byChangeManager, state, now, client, "check only");
    try {
      decide(command, state);
      return { violations: [], beginsAt: begins };
    } catch (error) {
      if (!isRuleViolation(error) || error.code === "NOT_FOUND") throw error;
      // One that can no longer start (its state, its window over) would begin at no time.
      const over = [error.rule, ...error.conditions.map((c) => c.rule)].some((rule) => FINAL_REFUSALS.has(rule));
      return { violations: error.conditions, beginsAt: over ? undefined : begins };
    }
  } finally {
    // A connection that cannot even roll back is not given back to the pool.
    const broken = await client.query("ROLLBACK").then(
      () => undefined,
      (error: Error) => error,
    );
    client.release(broken);
  }
}

/**
 * The gates of a scheduled deployment as it begins (its first claim, at once after a start for
 * now, or at its window's start), at `now`, with the freeze override the start recorded: what may
 * have turned against it since (a freeze, its changes' windows, authorizations or withdrawal, the
 * release abandoned, sent back for rework or its approval withdrawn, an artifact quarantined).
 * Not what moves on in the usual course: the release past its deployment phase (its production
 * deployment succeeded meanwhile), or changes linked to the release after the start (its changes
 * are those the start checked, and the plan's). With them, the changes it implements: those the
 * start checked that its plan names or its release still lists (one unlinked since is not its).
 */
export async function gatesAsItBegins(
  tx: pg.PoolClient,
  deployment: Deployment,
  now: Date,
): Promise<{ violations: RuleDetail[]; changeRequestIds: string[] }> {
  const justification = deployment.freezeOverrideJustification;
  const facts = await loadGateFacts(tx, deployment, await environmentOf(tx, deployment.environment), {
    now,
    freezeOverrideJustification: justification,
    byChangeManager: justification !== "",
  });
  // The plan's too: a start from before the start recorded its changes recorded none.
  const checked = new Set([
    ...deployment.changeRequestIds,
    ...deployment.linkedChangeIds.map((id) => id.toLowerCase()),
  ]);
  facts.changes = facts.changes.filter((change) => checked.has(change.changeId));
  const movedOn = (facts.release?.phase ?? ReleasePhase.UNSPECIFIED) > ReleasePhase.DEPLOYMENT;
  // A start from before starts recorded their changes named none: its begin names none either.
  const changeRequestIds = deployment.changeRequestIds.length ? facts.changes.map((change) => change.changeId) : [];
  const violations = evaluateGates(facts)
    .filter((violation) => !(movedOn && violation.rule === "gate.release_phase"))
    .map((violation) =>
      violation.rule === "gate.change_required"
        ? {
            ...violation,
            // A change linked since is not its: say so, rather than ask for what may be done.
            description:
              `${facts.environment.name} is production and none of the changes its start checked covers it ` +
              "any more (a change linked since is not this deployment's): plan and start it again",
          }
        : violation,
    );
  return { violations, changeRequestIds };
}

/** A rollback, with what the environment runs now and whether another deployment runs there. */
async function rollbackCommand(
  request: { deploymentId: string; reason: string; fast: boolean },
  state: DeploymentAggregateState,
  tx: pg.PoolClient,
): Promise<DeploymentCommand> {
  const { deployment, environment } = await inEnvironmentTurn(request.deploymentId, state, tx);
  return {
    kind: "rollbackDeployment",
    reason: request.reason,
    fast: request.fast,
    environmentBaseline: {
      deploymentId: environment.baselineDeploymentId,
      artifacts: environment.baseline,
      targetCiIds: allTargets(environment),
    },
    runningDeploymentId: await runningDeployment(tx, deployment.environment, deployment.deploymentId),
  };
}

/** A package deploys one version of each artifact: its baseline and inventory keep one per target and name. */
function requireOneOfEachName(artifacts: { name: string }[]) {
  // An artifact given by id only (no name) names nothing twice.
  const twice = artifacts.findIndex((a, i) => a.name !== "" && artifacts.findIndex((b) => b.name === a.name) < i);
  if (twice < 0) return;
  const description = `${artifacts[twice]?.name} is named again: a package deploys one version of each artifact`;
  throw new InvalidArgument([{ field: `artifacts[${twice}].name`, description }]);
}

/** Plan, approve, start (with the gates), pause, resume, promote, cancel and roll back. */
export function deploymentCommandHandlers(api: ApiContext) {
  const { handler } = api;
  const simple = <K extends Simple>(method: K) => simpleCommandHandler(handler, method);

  return {
    async planDeployment(request, ctx) {
      const strategy = request.strategy;
      // Required, with a kind, by the request's rules (protovalidate): this narrows the type.
      if (!strategy) throw new InvalidArgument([{ field: "strategy", description: "required" }]);
      requireOneOfEachName(request.artifacts);
      const deploymentId = randomUUID();
      return runDeploymentCommand(handler, ctx, M.planDeployment, request, {
        output: M.planDeployment.output,
        streamId: deploymentId,
        command: async (_state, decision, tx) => ({
          kind: "planDeployment",
          deploymentId,
          releaseId: request.releaseId,
          environment: await environmentOf(tx, request.environment),
          artifacts: request.artifacts,
          strategy,
          window: request.window,
          linkedChangeIds: request.linkedChangeIds,
          releaseAbandoned: await releaseAbandoned(tx, request.releaseId),
          now: decision.now,
        }),
      });
    },

    async approveDeployment(request, ctx) {
      return runDeploymentCommand(handler, ctx, M.approveDeployment, request, {
        output: M.approveDeployment.output,
        streamId: request.deploymentId,
        command: (state, decision) => ({
          kind: "approveDeployment",
          approver: decision.actor,
          approverGroups: [...decision.groups],
          approvalGroup: state.deployment?.approvalGroup ?? "",
          comment: request.comment,
        }),
      });
    },

    async checkDeploymentGates(request, ctx) {
      const byChangeManager = hasAnyRole(ctx.principal, ["change-manager"]);
      const { violations, beginsAt: begins } = await gatesCheck(api, request, byChangeManager);
      return create(CheckDeploymentGatesResponseSchema, {
        violations,
        ready: violations.length === 0,
        beginsAt: begins && timestampFromDate(begins),
        callerMayStart: hasAnyRole(ctx.principal, START_ROLES),
      });
    },

    async startDeployment(request, ctx) {
      const byChangeManager = hasAnyRole(ctx.principal, ["change-manager"]);
      return runDeploymentCommand(handler, ctx, M.startDeployment, request, {
        output: M.startDeployment.output,
        streamId: request.deploymentId,
        command: (state, decision, tx) => startCommand(request, byChangeManager, state, decision.now, tx),
      });
    },

    pauseDeployment: simple("pauseDeployment"),
    resumeDeployment: simple("resumeDeployment"),
    promoteDeployment: simple("promoteDeployment"),
    cancelDeployment: simple("cancelDeployment"),
    ...rollbackHandlers(api),
  } satisfies Partial<Handlers>;
}

/** Roll back, and give a rollback up. */
function rollbackHandlers({ handler }: ApiContext) {
  return {
    async abandonRollback(request, ctx) {
      return runDeploymentCommand(handler, ctx, M.abandonRollback, request, {
        output: M.abandonRollback.output,
        streamId: request.deploymentId,
        // In the environment's turn, as starts and rollbacks: the failure it may record is an outcome.
        command: async (state, _decision, tx) => {
          await inEnvironmentTurn(request.deploymentId, state, tx);
          return { kind: "abandonRollback", reason: request.reason };
        },
      });
    },

    async rollbackDeployment(request, ctx) {
      return runDeploymentCommand(handler, ctx, M.rollbackDeployment, request, {
        output: M.rollbackDeployment.output,
        streamId: request.deploymentId,
        command: (state, _decision, tx) => rollbackCommand(request, state, tx),
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
      streamId: request.deploymentId,
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
