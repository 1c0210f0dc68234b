import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RuleViolation } from "@rdm/command-handler";
import { type Deployment, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeploymentStep,
  DeploymentStepClaimedSchema,
  DeploymentStepCompletedSchema,
  DeploymentStepFailedSchema,
  DeploymentStepLeaseExpiredSchema,
  DeploymentStepReleasedSchema,
  DeploymentSucceededSchema,
  DeploymentTargetProgressedSchema,
  DeploymentVerificationRecordedSchema,
  StepKind,
  StepState,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { failedTargetsOf, liveColourAfter, placedOnSuccess } from "./baseline.js";
import { cancelledWhenDue, started } from "./deployment.js";
import type { DeploymentEvent } from "./deployment-evolve.js";
import { failAndRollBack, rolledBack } from "./rollback.js";
import { type RuleDetail, refuse, violation } from "./rule-violation.js";

export interface StepLease {
  stepIndex: number;
  fencingToken: bigint;
}

export type StepCommand =
  | {
      kind: "claimStep";
      stepIndex: number;
      executorId: string;
      leaseExpiresAt: Date;
      /** The step's current holder let its lease run out (the queue saw it): it is taken over. */
      leaseExpired: boolean;
      /**
       * A scheduled deployment's first claim: its gates as they stand now (checked again as it
       * begins), and the changes it implements (DeploymentStarted.change_request_ids).
       */
      begins: { violations: RuleDetail[]; changeRequestIds: string[] } | undefined;
      now: Date;
    }
  | ({ kind: "expireLease" } & StepLease)
  | ({
      kind: "reportTargetProgress";
      ciId: string;
      outcome: TargetOutcome;
      message: string;
      logLines: string[];
      verifications: { check: string; passed: boolean; detail: string }[];
    } & StepLease)
  | ({ kind: "completeStep"; now: Date } & StepLease)
  | ({ kind: "failStep"; reason: string; now: Date } & StepLease)
  | ({ kind: "releaseStep"; reason: string } & StepLease);

/**
 * The pause before a failed rollback step may be claimed again, after its `failures`th failure:
 * doubling from 5 s up to 5 min, so an executor that keeps failing it does not spin on it.
 */
const rollbackRetryPauseMs = (failures: number) => Math.min(5_000 * 2 ** Math.min(failures - 1, 10), 300_000);

/** NOT_FOUND, as the API's lease check answers for a step the deployment does not have. */
const stepOf = (deployment: Deployment, index: number): DeploymentStep => {
  const step = deployment.steps[index];
  if (!step)
    throw new RuleViolation("NOT_FOUND", "step.unknown", `the deployment has no step ${index}`, {
      subject: String(index),
      resourceType: "step",
    });
  return step;
};

/** Fencing: only the current holder of a claimed step may report on it. */
const heldStep = (deployment: Deployment, lease: StepLease): DeploymentStep => {
  const step = stepOf(deployment, lease.stepIndex);
  if (step.state !== StepState.CLAIMED || step.fencingToken !== lease.fencingToken) {
    refuse(
      "step.lease_lost",
      `step ${lease.stepIndex} is no longer held with fencing token ${lease.fencingToken}`,
      "step",
      String(lease.stepIndex),
    );
  }
  return step;
};

function claim(command: Extract<StepCommand, { kind: "claimStep" }>, deployment: Deployment): DeploymentEvent[] {
  const step = stepOf(deployment, command.stepIndex);
  const reclaim = step.state === StepState.CLAIMED && command.leaseExpired;
  if (step.state !== StepState.READY && !reclaim)
    refuse("step.not_ready", `step ${step.index} is not waiting`, "step", String(step.index));
  if (deployment.paused || deployment.awaitingPromotion) refuse("deployment.held", "the deployment is on hold");
  if (deployment.state === DeploymentState.SCHEDULED) {
    const cancelled = cancelledWhenDue(deployment, command.begins?.violations ?? [], command.now);
    if (cancelled) return [cancelled];
  }
  const deploymentId = deployment.deploymentId;
  const events: DeploymentEvent[] = [];
  if (reclaim) {
    events.push(
      create(DeploymentStepLeaseExpiredSchema, {
        deploymentId,
        stepIndex: step.index,
        fencingToken: step.fencingToken,
        executorId: step.executorId,
      }),
    );
  }
  if (deployment.state === DeploymentState.SCHEDULED)
    events.push(started(deployment, command.begins?.changeRequestIds ?? deployment.changeRequestIds));
  events.push(
    create(DeploymentStepClaimedSchema, {
      deploymentId,
      stepIndex: step.index,
      executorId: command.executorId,
      fencingToken: step.fencingToken + 1n,
      leaseExpiresAt: timestampFromDate(command.leaseExpiresAt),
    }),
  );
  return events;
}

/**
 * The targets counted against max_failed_targets: those whose last report failed, and those whose
 * deploy failed (a passing verification after it does not undo that), with `extra`, a report in
 * `step`, taken in.
 */
const failedTargets = (
  deployment: Deployment,
  extra?: { ciId: string; outcome: TargetOutcome; step: DeploymentStep },
) => {
  const outcomes = new Map(deployment.targets.map((target) => [target.ciId, target.outcome]));
  const deployFailed = new Set(failedTargetsOf(deployment));
  if (extra) {
    outcomes.set(extra.ciId, extra.outcome);
    if (extra.step.kind === StepKind.DEPLOY && !extra.step.rollback) {
      if (extra.outcome === TargetOutcome.FAILED) deployFailed.add(extra.ciId);
      else deployFailed.delete(extra.ciId);
    }
  }
  const lastFailed = [...outcomes].filter(([, outcome]) => outcome === TargetOutcome.FAILED).map(([ci]) => ci);
  return [...new Set([...deployFailed, ...lastFailed])];
};

function report(command: Extract<StepCommand, { kind: "reportTargetProgress" }>, deployment: Deployment) {
  const step = heldStep(deployment, command);
  if (!step.targetCiIds.includes(command.ciId)) {
    refuse("step.target", `${command.ciId} is not a target of step ${step.index}`, "step", String(step.index));
  }
  const lease = { deploymentId: deployment.deploymentId, stepIndex: step.index, fencingToken: step.fencingToken };
  const events: DeploymentEvent[] = [
    create(DeploymentTargetProgressedSchema, {
      ...lease,
      ciId: command.ciId,
      outcome: command.outcome,
      message: command.message,
      logLines: command.logLines,
    }),
    ...command.verifications.map((result) =>
      create(DeploymentVerificationRecordedSchema, { ...lease, ciId: command.ciId, ...result }),
    ),
  ];
  // A rollback keeps going whatever its targets report: the baseline must be restored.
  if (step.rollback) return events;
  const failedCheck = command.verifications.find((result) => !result.passed);
  if (failedCheck) {
    return [
      ...events,
      ...failAndRollBack(deployment, `verification ${failedCheck.check} failed on ${command.ciId}`, [command.ciId]),
    ];
  }
  const failed = failedTargets(deployment, { ...command, step });
  const limit = deployment.strategy?.maxFailedTargets ?? 0;
  if (command.outcome === TargetOutcome.FAILED && failed.length > limit) {
    return [...events, ...failAndRollBack(deployment, `${failed.length} target(s) failed (limit ${limit})`, failed)];
  }
  return events;
}

/** A step is done when each of its targets was reported on under its lease (a switch is one action for the colour). */
function requireReported(step: DeploymentStep) {
  if (step.kind === StepKind.SWITCH) return;
  const unreported = step.targetCiIds.filter((ci) => !step.reportedCiIds.includes(ci));
  if (!unreported.length) return;
  throw violation(
    "FAILED_PRECONDITION",
    "step.targets_unreported",
    `step ${step.index} cannot complete: ${unreported.length} of its targets have no SUCCEEDED or FAILED report under this lease as their last`,
    unreported.map((ci) => ({
      rule: "step.targets_unreported",
      subject: ci,
      description: `report ${ci} (ReportTargetProgress) before completing the step`,
    })),
    "step",
    String(step.index),
  );
}

function complete(command: Extract<StepCommand, { kind: "completeStep" }>, deployment: Deployment) {
  const step = heldStep(deployment, command);
  requireReported(step);
  const nextAvailableAt = new Date(command.now.getTime() + step.pauseSecondsAfter * 1000);
  const events: DeploymentEvent[] = [
    create(DeploymentStepCompletedSchema, {
      deploymentId: deployment.deploymentId,
      stepIndex: step.index,
      fencingToken: step.fencingToken,
      nextAvailableAt: timestampFromDate(nextAvailableAt),
    }),
  ];
  const last = !deployment.steps.some((other) => other.index > step.index && other.rollback === step.rollback);
  if (!last) return events;
  if (step.rollback) return [...events, rolledBack(deployment, deployment.reason)];
  return [
    ...events,
    create(DeploymentSucceededSchema, {
      deploymentId: deployment.deploymentId,
      releaseId: deployment.releaseId,
      environment: deployment.environment,
      artifacts: placedOnSuccess(deployment),
      failedTargetCiIds: failedTargets(deployment),
      liveColour: liveColourAfter(deployment, "succeeded"),
    }),
  ];
}

export function decideStepCommand(command: StepCommand, deployment: Deployment): DeploymentEvent[] {
  switch (command.kind) {
    case "claimStep":
      return claim(command, deployment);
    case "expireLease": {
      const step = heldStep(deployment, command);
      return [
        create(DeploymentStepLeaseExpiredSchema, {
          deploymentId: deployment.deploymentId,
          stepIndex: step.index,
          fencingToken: step.fencingToken,
          executorId: step.executorId,
        }),
      ];
    }
    case "releaseStep": {
      // Given back unfinished: the step returns to the queue; the holder's lease is void from now on.
      const step = heldStep(deployment, command);
      return [
        create(DeploymentStepReleasedSchema, {
          deploymentId: deployment.deploymentId,
          stepIndex: step.index,
          fencingToken: step.fencingToken,
          reason: command.reason,
        }),
      ];
    }
    case "reportTargetProgress":
      return report(command, deployment);
    case "completeStep":
      return complete(command, deployment);
    case "failStep": {
      const step = heldStep(deployment, command);
      const failedStep = create(DeploymentStepFailedSchema, {
        deploymentId: deployment.deploymentId,
        stepIndex: step.index,
        fencingToken: step.fencingToken,
        reason: command.reason,
      });
      if (step.rollback) {
        failedStep.retryAt = timestampFromDate(
          new Date(command.now.getTime() + rollbackRetryPauseMs(step.failures + 1)),
        );
        return [failedStep];
      }
      const failed = failedTargets(deployment);
      return [failedStep, ...failAndRollBack(deployment, `step ${step.index} failed: ${command.reason}`, failed)];
    }
  }
}
