import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { createGrpcClient, type GrpcClient } from "@rdm/grpc";
import { DeploymentService, type StepAssignment } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeployedArtifactSchema, StepKind, TargetOutcome } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";

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
  log?: (line: string) => void;
}

interface TargetResult {
  ok: boolean;
  lines: string[];
}

const lastLines = (text: string, count = 50) => text.split("\n").filter(Boolean).slice(-count);

/**
 * Runs the action for one target. The command gets the step in its environment (RDM_TARGET,
 * RDM_STEP_KIND, RDM_ENVIRONMENT, RDM_DEPLOYMENT_ID, RDM_COLOUR, RDM_ARTIFACTS as JSON); the HTTP
 * call gets the same as a JSON body. Success: exit status 0, or a 2xx answer.
 */
export async function performTarget(action: TargetAction, assignment: StepAssignment, ciId: string, timeoutMs: number) {
  const context = {
    target: ciId,
    stepKind: StepKind[assignment.step?.kind ?? StepKind.UNSPECIFIED],
    environment: assignment.environment,
    deploymentId: assignment.deploymentId,
    colour: assignment.step?.colour ?? "",
    artifacts: assignment.artifacts.map((artifact) => toJson(DeployedArtifactSchema, artifact)),
  };
  if ("httpUrl" in action) {
    const response = await fetch(action.httpUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(context),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { ok: response.ok, lines: lastLines(await response.text()) } satisfies TargetResult;
  }
  const env = {
    ...process.env,
    RDM_TARGET: context.target,
    RDM_STEP_KIND: context.stepKind,
    RDM_ENVIRONMENT: context.environment,
    RDM_DEPLOYMENT_ID: context.deploymentId,
    RDM_COLOUR: context.colour,
    RDM_ARTIFACTS: JSON.stringify(context.artifacts),
  };
  try {
    const { stdout, stderr } = await run("/bin/sh", ["-c", action.command], { env, timeout: timeoutMs });
    return { ok: true, lines: lastLines(`${stdout}\n${stderr}`) } satisfies TargetResult;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, lines: lastLines(`${failed.stdout ?? ""}\n${failed.stderr ?? ""}\n${failed.message}`) };
  }
}

/** The reference executor: claims steps, performs each target, heartbeats meanwhile, reports. */
export class ReferenceExecutor {
  private readonly client: GrpcClient<(typeof DeploymentService)["method"]>;
  private readonly log: (line: string) => void;
  constructor(private readonly options: ExecutorOptions) {
    this.client = createGrpcClient(DeploymentService, options.address, { token: options.token });
    this.log = options.log ?? (() => undefined);
  }

  /** Claims and performs one step; false when none was waiting. */
  async runOnce(): Promise<boolean> {
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
    this.log(`claimed step ${lease.stepIndex} (${StepKind[assignment.step.kind]}) of ${lease.deploymentId}`);
    // Heartbeats at a third of the lease; a lost lease ends the step without further reports.
    let lost = false;
    const heartbeat = setInterval(
      () => {
        this.client.heartbeatStep({ lease, leaseSeconds: this.options.leaseSeconds }).catch((error: unknown) => {
          lost = true;
          this.log(`lease lost on step ${lease.stepIndex}: ${String(error)}`);
        });
      },
      (this.options.leaseSeconds * 1000) / 3,
    );
    try {
      await this.performStep(assignment, lease, () => lost);
    } finally {
      clearInterval(heartbeat);
    }
    return true;
  }

  private async performStep(
    assignment: StepAssignment,
    lease: { deploymentId: string; stepIndex: number; fencingToken: bigint },
    isLost: () => boolean,
  ) {
    const verify = assignment.step?.kind === StepKind.VERIFY;
    for (const ciId of assignment.step?.targetCiIds ?? []) {
      if (isLost()) return;
      const result = await performTarget(this.options.action, assignment, ciId, this.options.timeoutMs ?? 300_000);
      const { deployment } = await this.client.reportTargetProgress({
        requestId: crypto.randomUUID(),
        lease,
        ciId,
        outcome: result.ok ? TargetOutcome.SUCCEEDED : TargetOutcome.FAILED,
        message: result.ok ? "done" : "failed",
        logLines: result.lines,
        verifications: verify
          ? [{ check: "reference-executor", passed: result.ok, detail: result.lines.at(-1) ?? "" }]
          : [],
      });
      // The report may have ended the step (failed verification, failed-target limit): stop here.
      if (deployment?.steps[lease.stepIndex]?.fencingToken !== lease.fencingToken) return;
      if (deployment.steps[lease.stepIndex]?.state !== assignment.step?.state) return;
    }
    await this.client.completeStep({ requestId: crypto.randomUUID(), lease });
    this.log(`completed step ${lease.stepIndex} of ${lease.deploymentId}`);
  }

  close() {
    this.client.close();
  }
}
