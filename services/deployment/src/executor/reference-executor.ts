import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { createGrpcClient, errorDetails, type GrpcClient, GrpcStatus as status } from "@rdm/grpc";
import type { Logger } from "@rdm/observability";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  DeploymentService,
  type StepAssignment,
  type StepLease,
} from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeployedArtifactSchema, StepKind, TargetOutcome } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { forStep } from "../domain/baseline.js";

const run = promisify(execFile);

/** How the reference executor performs one target: a shell command, or an HTTP POST. */
export type TargetAction = { command: string } | { httpUrl: string };

export interface ExecutorOptions {
  address: string;
  token: string;
  executorId: string;
  environments: string[];
  labels: string[];
  leaseSeconds: number;
  action: TargetAction;
  /** Per target; a command or request running longer fails the target. */
  timeoutMs?: number;
  /** Claims and outcomes at info, idle polls at debug, trouble at warn (pino's shape). */
  logger?: ExecutorLog;
}

export type ExecutorLog = Pick<Logger, "debug" | "info" | "warn">;

/** How long an executor waits before polling again: from pollMs, doubled per idle poll up to maxPollMs. */
export interface PollBackoff {
  pollMs: number;
  maxPollMs: number;
}

/** The pause after an idle poll (or a failed one), given the one before it (0 after work). */
export const nextPollDelay = (previous: number, { pollMs, maxPollMs }: PollBackoff) =>
  Math.min(maxPollMs, previous === 0 ? pollMs : previous * 2);

interface TargetResult {
  ok: boolean;
  lines: string[];
}

const lastLines = (text: string, count = 50) => text.split("\n").filter(Boolean).slice(-count);

/**
 * Runs the action for one target. The command gets the step in its environment (RDM_TARGET,
 * RDM_STEP_KIND, RDM_ENVIRONMENT, RDM_DEPLOYMENT_ID, RDM_COLOUR, RDM_ARTIFACTS as JSON: the
 * artifacts that go to this target, all of them for a switch; RDM_RESTORED_ARTIFACT_NAMES as JSON:
 * a rollback step's names, whose artifacts not listed go away); the HTTP call gets the same as a
 * JSON body. Success: exit status 0, or a 2xx answer.
 */
export async function performTarget(
  action: TargetAction,
  assignment: StepAssignment,
  ciId: string,
  timeoutMs: number,
  stop?: AbortSignal,
) {
  const kind = assignment.step?.kind ?? StepKind.UNSPECIFIED;
  const context = {
    target: ciId,
    stepKind: StepKind[kind],
    environment: assignment.environment,
    deploymentId: assignment.deploymentId,
    colour: assignment.step?.colour ?? "",
    artifacts: forStep(assignment.artifacts, { kind, targetCiIds: [ciId] }).map((artifact) =>
      toJson(DeployedArtifactSchema, artifact),
    ),
    restoredArtifactNames: assignment.restoredArtifactNames,
  };
  if ("httpUrl" in action) {
    try {
      const response = await fetch(action.httpUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(context),
        signal: stop ? AbortSignal.any([AbortSignal.timeout(timeoutMs), stop]) : AbortSignal.timeout(timeoutMs),
      });
      return { ok: response.ok, lines: lastLines(await response.text()) } satisfies TargetResult;
    } catch (error) {
      // Stopped because the step is over for this executor: the caller does not report it.
      if (stop?.aborted) return { ok: false, lines: ["stopped: the step is over"] } satisfies TargetResult;
      throw error;
    }
  }
  const env = {
    ...process.env,
    RDM_TARGET: context.target,
    RDM_STEP_KIND: context.stepKind,
    RDM_ENVIRONMENT: context.environment,
    RDM_DEPLOYMENT_ID: context.deploymentId,
    RDM_COLOUR: context.colour,
    RDM_ARTIFACTS: JSON.stringify(context.artifacts),
    RDM_RESTORED_ARTIFACT_NAMES: JSON.stringify(context.restoredArtifactNames),
  };
  try {
    const { stdout, stderr } = await run("/bin/sh", ["-c", action.command], {
      env,
      timeout: timeoutMs,
      ...(stop ? { signal: stop } : {}),
    });
    return { ok: true, lines: lastLines(`${stdout}\n${stderr}`) } satisfies TargetResult;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, lines: lastLines(`${failed.stdout ?? ""}\n${failed.stderr ?? ""}\n${failed.message}`) };
  }
}

/**
 * The reference executor: claims steps, performs each target, heartbeats meanwhile, reports.
 * Asked to stop in the middle of a step, it gives the step back (ReleaseStep) before the next
 * target, so another executor carries on at once instead of waiting for the lease to lapse.
 */
export class ReferenceExecutor {
  private readonly client: GrpcClient<(typeof DeploymentService)["method"]>;
  private readonly logger: ExecutorLog;
  private readonly stopping = new AbortController();
  constructor(private readonly options: ExecutorOptions) {
    // A report refused for a moment (ABORTED, UNAVAILABLE) is sent again with its request id,
    // rather than abandoning the step until its lease lapses.
    this.client = createGrpcClient(DeploymentService, options.address, {
      token: options.token,
      retry: { maxAttempts: 5 },
    });
    this.logger = options.logger ?? { debug: () => undefined, info: () => undefined, warn: () => undefined };
  }

  /** Claims and performs one step; false when none was waiting. */
  async runOnce(): Promise<boolean> {
    const claimSentAt = performance.now();
    const { assignment } = await this.client.claimStep({
      requestId: crypto.randomUUID(),
      executorId: this.options.executorId,
      environments: this.options.environments,
      labels: this.options.labels,
      leaseSeconds: this.options.leaseSeconds,
    });
    if (!assignment?.step) return false;
    const lease = {
      deploymentId: assignment.deploymentId,
      stepIndex: assignment.step.index,
      fencingToken: assignment.fencingToken,
    };
    const about = {
      deployment_id: lease.deploymentId,
      step_index: lease.stepIndex,
      environment: assignment.environment,
    };
    this.logger.info(
      { ...about, kind: StepKind[assignment.step.kind], targets: assignment.step.targetCiIds },
      "step claimed",
    );
    // Heartbeats at a third of the lease. The lease is lost when the service says so, or when its
    // term has run out since the last renewal: a heartbeat that fails for a moment (the service
    // restarting) leaves the lease to its term, and the step carries on.
    const held = new HeldLease(this.options.leaseSeconds, claimSentAt);
    const every = (this.options.leaseSeconds * 1000) / 3;
    const beat = () => {
      const sentAt = performance.now();
      // A heartbeat that hangs fails by its deadline, as one the service could not answer.
      const deadline = Math.max(MIN_DEADLINE_MS, Math.min(every, held.leftMs()));
      return this.client.heartbeatStep({ lease, leaseSeconds: this.options.leaseSeconds }, { deadline }).then(
        () => held.renewed(sentAt),
        (error: unknown) => {
          if (held.over) return;
          const ended = stepEnded(error);
          if (ended) {
            held.end(`ended by the service: ${ended}`);
            this.logger.info({ ...about, reason: ended }, "step ended by the service");
          } else if (isTransient(error) && !held.expired()) {
            this.logger.warn({ ...about, err: String(error), lease_left_ms: held.leftMs() }, "heartbeat failed");
          } else {
            held.end("lease lost");
            this.logger.warn({ ...about, err: String(error) }, "lease lost: the step is abandoned");
          }
        },
      );
    };
    // A claim answered late by this executor's clock (sent before the service paused, or held
    // up on the way), with less of the term left than a heartbeat's period or none, may hold
    // longer on the service's, which began it when it took the claim: one heartbeat at once
    // renews it, rather than the step waiting out the lease or a target's result being dropped.
    if (held.leftMs() < every) await beat();
    const heartbeat = setInterval(() => void beat(), every);
    try {
      this.logger.info({ ...about, outcome: await this.performStep(assignment, lease, held) }, "step over");
    } finally {
      clearInterval(heartbeat);
    }
    return true;
  }

  /**
   * Runs steps until stop(): after work it polls again at once; idle (or failing to reach the
   * service) it waits, doubling the pause from pollMs up to maxPollMs. Idle polls log at debug.
   */
  async run(backoff: PollBackoff & { once?: boolean }) {
    let delay = 0;
    while (!this.stopping.signal.aborted) {
      const worked = await this.runOnce().catch((error: unknown) => {
        this.logger.warn({ err: String(error), retry_in_ms: nextPollDelay(delay, backoff) }, "claim failed");
        return false;
      });
      if (backoff.once) return;
      delay = worked ? 0 : nextPollDelay(delay, backoff);
      if (worked) continue;
      this.logger.debug({ next_poll_ms: delay }, "no step waiting");
      await sleep(delay, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    }
  }

  /** Ends run() after the current target: a step in progress is given back. */
  stop() {
    this.stopping.abort();
  }

  /** Performs the step's targets and reports them; says how it ended. */
  private async performStep(assignment: StepAssignment, lease: Lease, held: HeldLease): Promise<string> {
    try {
      return await this.performTargets(assignment, lease, held);
    } catch (error) {
      // The step ended under the lease (e.g. a failed verification elsewhere skipped it): done.
      const ended = stepEnded(error);
      if (ended) return `ended by the service: ${ended}`;
      // Refused as no longer held (e.g. taken over just before a report): over for this executor.
      const lost = leaseLost(error);
      if (lost) return `lease lost: ${lost}`;
      throw error;
    }
  }

  private async performTargets(assignment: StepAssignment, lease: Lease, held: HeldLease): Promise<string> {
    const verify = assignment.step?.kind === StepKind.VERIFY;
    for (const ciId of assignment.step?.targetCiIds ?? []) {
      const gone = held.gone();
      if (gone) return gone;
      if (this.stopping.signal.aborted) {
        await this.client.releaseStep({ requestId: crypto.randomUUID(), lease, reason: "executor stopping" });
        return "given back: executor stopping";
      }
      const timeoutMs = this.options.timeoutMs ?? 300_000;
      const result = await performTarget(this.options.action, assignment, ciId, timeoutMs, held.stopped.signal);
      // The lease went while the target ran (its action stopped then): the step is another
      // executor's now, unreported here. The service hears that this executor stopped from a
      // last call on the lease (refused), so a restore waiting for it goes out at once.
      const goneMeanwhile = held.gone();
      if (goneMeanwhile) {
        await this.client
          .releaseStep({ requestId: crypto.randomUUID(), lease, reason: `stopped: ${goneMeanwhile}` })
          .catch(() => undefined);
        return `${goneMeanwhile} while ${ciId} was performed`;
      }
      const report = {
        requestId: crypto.randomUUID(),
        lease,
        ciId,
        outcome: result.ok ? TargetOutcome.SUCCEEDED : TargetOutcome.FAILED,
        message: result.ok ? "done" : "failed",
        logLines: result.lines,
        verifications: verify
          ? [{ check: "reference-executor", passed: result.ok, detail: result.lines.at(-1) ?? "" }]
          : [],
      };
      const { deployment } = await this.whileLeaseHolds(held, (deadline) =>
        this.client.reportTargetProgress(report, { deadline }),
      );
      // The report may have ended the step (failed verification, failed-target limit): stop here.
      const step = deployment?.steps[lease.stepIndex];
      if (step?.fencingToken !== lease.fencingToken || step.state !== assignment.step?.state) {
        return `ended by the report on ${ciId} (deployment ${DeploymentState[deployment?.state ?? 0]})`;
      }
    }
    const completion = { requestId: crypto.randomUUID(), lease };
    const { deployment } = await this.whileLeaseHolds(held, (deadline) =>
      this.client.completeStep(completion, { deadline }),
    );
    return `completed (deployment ${DeploymentState[deployment?.state ?? 0]})`;
  }

  /**
   * Sends a report until it is answered: one the service could not take for now (the service or
   * its database away, or no answer by the end of the lease's term) is sent again with its
   * request id every half second while the lease holds, so a restart of the service does not
   * cost the step its lease.
   */
  private async whileLeaseHolds<T>(held: HeldLease, send: (deadlineMs: number) => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await send(Math.max(MIN_DEADLINE_MS, held.leftMs()));
      } catch (error) {
        if (!isTransient(error) || held.over || held.expired() || this.stopping.signal.aborted) throw error;
        await sleep(REPORT_RETRY_MS);
      }
    }
  }

  close() {
    this.client.close();
  }
}

/** The lease a claim gave, as every call on the step names it. */
type Lease = Pick<StepLease, "deploymentId" | "stepIndex" | "fencingToken">;

const REPORT_RETRY_MS = 500;
/** The least time a heartbeat or report is given, however little of the term is left. */
const MIN_DEADLINE_MS = 1_000;

/** The description of the service's refusal by `rule` (a FAILED_PRECONDITION), if `error` is one. */
function refusedBy(error: unknown, rule: string): string | undefined {
  if ((error as { code?: number }).code !== status.FAILED_PRECONDITION) return undefined;
  return errorDetails(error).preconditionFailure?.violations.find((v) => v.type === rule)?.description;
}

/** The service's word that the step ended under the lease: its description. */
const stepEnded = (error: unknown) => refusedBy(error, "step.ended");

/** The service's word that the lease is no longer this executor's (taken over, expired). */
const leaseLost = (error: unknown) => refusedBy(error, "step.lease_lost");

/** Answers that say the service could not take the call for now, not that it refused it. */
const isTransient = (error: unknown) =>
  [status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED].includes((error as { code?: number }).code ?? -1);

/** The lease on the step being performed, as far as this executor knows: renewed, or over. */
class HeldLease {
  /** Why the step is over for this executor (the lease lost, the step ended); undefined while held. */
  over: string | undefined;
  /** Aborted when the step is over: the target's action running then is stopped. */
  readonly stopped = new AbortController();

  end(why: string) {
    this.over = why;
    this.stopped.abort();
  }

  /** `renewedAt` starts as when the claim that gave the lease was sent (performance.now()). */
  constructor(
    private readonly seconds: number,
    private renewedAt: number,
  ) {}

  /** Why the step is no longer this executor's (lost, ended, or its term passed), if it is not. */
  gone(): string | undefined {
    // Its term passed without a renewal: another executor may hold the step now.
    return this.over ?? (this.expired() ? "lease expired" : undefined);
  }

  /** A heartbeat sent at `sentAt` (performance.now()) was answered: the term runs from then. */
  renewed(sentAt: number) {
    this.renewedAt = Math.max(this.renewedAt, sentAt);
  }

  leftMs() {
    return Math.round(this.seconds * 1000 - (performance.now() - this.renewedAt));
  }

  /** The term has run out since the last renewal: another executor may hold the step now. */
  expired() {
    return this.leftMs() <= 0;
  }
}
