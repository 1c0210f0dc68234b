import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type DecisionContext, RuleViolation } from "@rdm/command-handler";
import { type CallContext, InvalidArgument, requestFingerprint } from "@rdm/grpc";
import { type Deployment, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  ClaimStepResponseSchema,
  DeploymentService,
  HeartbeatStepResponseSchema,
  StepAssignmentSchema,
  type StepLease,
} from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { StepKind, StepState } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import { type DeploymentCommand, forStep } from "../domain/index.js";
import {
  endHeldLease,
  extendLease,
  IDLE_CLAIM_STREAM,
  leaseIsLive,
  lockNextStep,
  type QueuedStep,
} from "../store/step-queue.js";
import { findDeployment, type Queryable } from "../store/tables.js";
import { notFound, runDeploymentCommand } from "./commands.js";
import { gatesAsItBegins } from "./deployment-commands.js";
import type { ApiContext, Handlers } from "./deployment-service.js";

const M = DeploymentService.method;

/** Thrown out of a claim's transaction when no step waits: nothing is appended or recorded. */
class NothingToClaim extends Error {
  override readonly name = "NothingToClaim";
}

const leaseLost = (lease: { stepIndex: number; fencingToken: bigint }, why: string) =>
  new RuleViolation(
    "FAILED_PRECONDITION",
    "step.lease_lost",
    `the lease on step ${lease.stepIndex} with fencing token ${lease.fencingToken} ${why}`,
    { subject: String(lease.stepIndex), resourceType: "step" },
  );

const ENDED = new Set([StepState.COMPLETED, StepState.FAILED, StepState.SKIPPED]);

/**
 * Why a lease is not live, as the executor needs it: no such deployment (its mistake), the step
 * over without it (a failed verification skipped it, a cancellation, a completion: stop, nothing
 * is wrong with the lease), or the lease itself gone (expired, or another executor holds it).
 */
async function leaseRefusal(db: Queryable, lease: ReturnType<typeof leaseOf>) {
  const deployment = await findDeployment(db, lease.deploymentId);
  if (!deployment) return notFound("deployment", lease.deploymentId);
  const step = deployment.steps[lease.stepIndex];
  if (!step) return notFound("step", `${lease.deploymentId} step ${lease.stepIndex}`);
  if (step.fencingToken > lease.fencingToken)
    return leaseLost(lease, `was taken over (fencing token ${step.fencingToken} holds it)`);
  if (ENDED.has(step.state)) {
    const reason = deployment.reason ? ` (${deployment.reason})` : "";
    return new RuleViolation(
      "FAILED_PRECONDITION",
      "step.ended",
      `step ${lease.stepIndex} has ended ${StepState[step.state]}, the deployment is ${DeploymentState[deployment.state]}${reason}: report nothing more for it`,
      { subject: String(lease.stepIndex), resourceType: "step" },
    );
  }
  // A token the service never gave for this step (higher than its own, or a step never claimed).
  if (step.fencingToken < lease.fencingToken || step.state === StepState.PENDING)
    return leaseLost(
      lease,
      `was never given: the step is ${StepState[step.state]} with fencing token ${step.fencingToken}`,
    );
  // Back in the queue: given back (ReleaseStep, a failed rollback step), or expired and swept.
  if (step.state === StepState.READY)
    return leaseLost(lease, "was given back or expired: the step waits to be claimed again");
  return leaseLost(lease, "expired");
}

const leaseOf = (lease: StepLease | undefined) => {
  if (!lease) throw new InvalidArgument([{ field: "lease", description: "required" }]);
  return {
    deploymentId: lease.deploymentId,
    stepIndex: lease.stepIndex,
    fencingToken: lease.fencingToken,
  };
};

/**
 * Refuses a report whose lease ran out or changed hands, before the stream is even loaded
 * (fencing); else keeps PostgreSQL's clock as it judged the lease (`clock.now`).
 */
const requireLiveLease =
  (lease: ReturnType<typeof leaseOf>, clock: { now?: Date | undefined }) => async (tx: pg.PoolClient) => {
    const { live, now } = await leaseIsLive(tx, lease);
    clock.now = now;
    if (live) return;
    throw await leaseRefusal(tx, lease);
  };

/**
 * A report on a lease (sent once a target's action is over) as a deployment command, refused
 * unless the lease is live. Refused as `step.ended`, the holder has stopped and now knows the
 * service ended its step, so the step holds its environment's next steps no more (endHeldLease).
 */
async function reportOnLease<R extends DescMessage>(
  { handler, pool }: ApiContext,
  ctx: CallContext,
  method: { input: DescMessage; output: R },
  request: MessageShape<DescMessage> & { requestId: string; lease?: StepLease | undefined },
  command: (lease: ReturnType<typeof leaseOf>, decision: DecisionContext) => DeploymentCommand,
): Promise<MessageShape<R>> {
  const lease = leaseOf(request.lease);
  const database: { now?: Date | undefined } = {};
  try {
    return await runDeploymentCommand(handler, ctx, method, request, {
      output: method.output,
      streamId: lease.deploymentId,
      prepare: requireLiveLease(lease, database),
      // The pauses a completion or failure sets are counted by the clock the queue is judged by.
      command: (_state, decision) => command(lease, { ...decision, now: database.now ?? decision.now }),
    });
  } catch (error) {
    if (error instanceof RuleViolation && error.rule === "step.ended") await endHeldLease(pool, lease);
    throw error;
  }
}

/**
 * A claim: the next eligible step under a lease, or a recorded "nothing waiting". Its own function
 * because the queue, not the request, picks the stream, unlike every other executor RPC.
 */
function claimStepHandler({ handler, pool, store }: ApiContext): Handlers["claimStep"] {
  return async (request, ctx) => {
    const recorded = {
      response: ClaimStepResponseSchema,
      requestHash: requestFingerprint(M.claimStep.input, request, ctx.principal.subject),
    };
    // A retry gets the first answer before the queue is looked at: it must not take (or lock)
    // another waiting step for a request that already has its step.
    const first = await handler.replay(request.requestId, recorded, pool);
    if (first) return first;
    let queued: QueuedStep | undefined;
    try {
      return await runDeploymentCommand(handler, ctx, M.claimStep, request, {
        output: ClaimStepResponseSchema,
        // The queue picks the stream: the next eligible step, locked past the append's commit
        // (the command's own transaction), so a racing claim skips to the next step.
        streamId: async (tx) => {
          queued = await lockNextStep(tx, { environments: request.environments, labels: request.labels });
          if (!queued) throw new NothingToClaim();
          return queued.deploymentId;
        },
        command: async ({ deployment }, decision, tx) => ({
          kind: "claimStep",
          stepIndex: queued?.stepIndex ?? -1,
          executorId: request.executorId,
          leaseExpiresAt: new Date((queued?.now ?? decision.now).getTime() + request.leaseSeconds * 1000),
          leaseExpired: queued?.leaseExpired ?? false,
          // Its first claim: the gates are checked again as it begins (see gatesAsItBegins).
          begins:
            deployment?.state === DeploymentState.SCHEDULED
              ? await gatesAsItBegins(tx, deployment, decision.now)
              : undefined,
          now: decision.now,
        }),
        respond: ({ deployment }) => claimResponse(deployment, queued?.stepIndex ?? -1),
      });
    } catch (error) {
      if (!(error instanceof NothingToClaim)) throw error;
      // An idle executor polls: its empty claims are logged at debug, not one info line a poll.
      ctx.callLogLevel = "debug";
      // "Nothing waiting" is an answer too, recorded like any no-op (a retry gets it, not a
      // step that arrived since); a twin that recorded first has its answer returned. The lease
      // sweep deletes these answers after an hour (forgetIdleClaims).
      const nothing = create(ClaimStepResponseSchema);
      const response = toBinary(ClaimStepResponseSchema, nothing);
      const streamId = IDLE_CLAIM_STREAM;
      const taken = !(await store.recordCommandResult(request.requestId, { ...recorded, response, streamId }));
      return (taken && (await handler.replay(request.requestId, recorded, pool))) || nothing;
    }
  };
}

/** The executor protocol: claim with a lease, heartbeat, report per target, complete, fail or give back. */
export function executorHandlers(api: ApiContext) {
  const { pool } = api;
  return {
    claimStep: claimStepHandler(api),

    async heartbeatStep(request) {
      const lease = leaseOf(request.lease);
      // A heartbeat runs beside the holder's work: hearing step.ended here, the holder has not
      // stopped yet, so the step keeps holding its environment's next ones (see reportOnLease).
      const until = await extendLease(pool, lease, request.leaseSeconds);
      if (!until) throw await leaseRefusal(pool, lease);
      return create(HeartbeatStepResponseSchema, { leaseExpiresAt: timestampFromDate(until) });
    },

    reportTargetProgress: (request, ctx) =>
      reportOnLease(api, ctx, M.reportTargetProgress, request, (lease) => ({
        kind: "reportTargetProgress",
        ...lease,
        ciId: request.ciId,
        outcome: request.outcome,
        message: request.message,
        logLines: request.logLines,
        verifications: request.verifications.map(({ check, passed, detail }) => ({ check, passed, detail })),
      })),

    completeStep: (request, ctx) =>
      reportOnLease(api, ctx, M.completeStep, request, (lease, decision) => ({
        kind: "completeStep",
        ...lease,
        now: decision.now,
      })),

    failStep: (request, ctx) =>
      reportOnLease(api, ctx, M.failStep, request, (lease, decision) => ({
        kind: "failStep",
        ...lease,
        reason: request.reason,
        now: decision.now,
      })),

    releaseStep: (request, ctx) =>
      reportOnLease(api, ctx, M.releaseStep, request, (lease) => ({
        kind: "releaseStep",
        ...lease,
        reason: request.reason,
      })),
  } satisfies Partial<Handlers>;
}

/** A claim's answer: the step and what it deploys, or nothing to do. */
function claimResponse(deployment: Deployment | undefined, stepIndex: number) {
  const step = deployment?.steps[stepIndex];
  // Not claimed: the deployment was cancelled as it was due to begin (its gates no longer held).
  if (!deployment || step?.state !== StepState.CLAIMED) return create(ClaimStepResponseSchema);
  const rollback = step.rollback || step.kind === StepKind.ROLLBACK;
  const artifacts = forStep(rollback ? deployment.baseline : deployment.artifacts, step);
  return create(ClaimStepResponseSchema, {
    assignment: create(StepAssignmentSchema, {
      deploymentId: deployment.deploymentId,
      releaseId: deployment.releaseId,
      environment: deployment.environment,
      step,
      artifacts,
      restoredArtifactNames: rollback ? deployment.baselineArtifactNames : [],
      fencingToken: step.fencingToken,
      ...(step.leaseExpiresAt ? { leaseExpiresAt: step.leaseExpiresAt } : {}),
    }),
  });
}
