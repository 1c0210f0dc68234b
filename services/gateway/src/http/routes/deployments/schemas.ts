import { uuidSchema } from "../../problems.js";
import { arr, date, nullableDate, str } from "../../schema-parts.js";
import { afterSchema } from "../../sse.js";
import { CI_STATUSES } from "../configuration/schemas.js";

const obj = <const P extends Record<string, unknown>>(properties: P, example?: unknown) =>
  ({ type: "object", properties, ...(example ? { examples: [example] } : {}) }) as const;

/** The deployment service's states (DeploymentState), by name. */
export const DEPLOYMENT_STATES = [
  "PLANNED",
  "AWAITING_APPROVAL",
  "SCHEDULED",
  "IN_PROGRESS",
  "VERIFYING",
  "SUCCEEDED",
  "FAILED",
  "ROLLING_BACK",
  "ROLLED_BACK",
  "CANCELLED",
] as const;
const OUTCOMES = ["SUCCEEDED", "FAILED", "ROLLED_BACK"] as const;

const nullable = <const T extends string>(values: readonly T[]) => ({
  type: ["string", "null"],
  enum: [...values, null],
});

/** An environment's name as the deployment service takes it: any other names no environment. */
export const environmentName = {
  type: "string",
  pattern: "^[a-z][a-z0-9-]{0,62}$",
  maxLength: 63,
  examples: ["production"],
} as const;

/**
 * An environment as a change or a freeze names it: those recorded before the change service took
 * the deployment service's names (2026-12-06) may name one otherwise (`Production`).
 */
export const namedEnvironment = { type: "string", minLength: 1, maxLength: 100, examples: ["production"] } as const;

const artifactSchema = obj({
  artifactId: { ...str, description: "DML artifact id, when the deployment service knew it" },
  name: str,
  version: str,
  targetCiIds: { ...arr(str), description: "configuration items it was deployed to" },
});

const deploymentExample = {
  deploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
  releaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
  environment: "production",
  state: "ROLLED_BACK",
  paused: false,
  awaitingPromotion: false,
  strategy: "CANARY",
  window: { start: "2026-12-01T09:00:00.000Z", end: "2026-12-01T11:00:00.000Z" },
  linkedChangeIds: ["7c9e6679-7425-40de-944b-e07fc1f90ae7"],
  approvals: { required: 1, granted: 1, group: "prod-approvers" },
  progress: {
    stepsTotal: 5,
    stepsCompleted: 2,
    stepsFailed: 1,
    deployStepsTotal: 3,
    deployStepsCompleted: 1,
    currentStep: null,
    targetsSucceeded: 1,
    targetsFailed: 1,
  },
  artifacts: [{ artifactId: "", name: "payments-api", version: "4.2.0", targetCiIds: ["host-17", "host-18"] }],
  restoredArtifacts: [{ artifactId: "", name: "payments-api", version: "4.1.3", targetCiIds: ["host-17", "host-18"] }],
  reason: "automatic back-out after failed verification",
  failureReason: "error rate above 2% on the canary",
  failedTargetCiIds: ["host-17"],
  rollbackReason: "automatic back-out after failed verification",
  plannedAt: "2026-12-01T08:30:00.000Z",
  startedAt: "2026-12-01T09:00:00.000Z",
  finishedAt: "2026-12-01T09:12:30.000Z",
  rolledBackAt: "2026-12-01T09:14:02.000Z",
  updatedAt: "2026-12-01T09:14:02.000Z",
};

const int = { type: "integer" } as const;

export const deploymentSchema = obj(
  {
    deploymentId: str,
    releaseId: str,
    environment: str,
    state: {
      type: "string",
      enum: DEPLOYMENT_STATES,
      description: "as the deployment service has it (DeploymentState): VERIFYING while a verification step runs",
    },
    paused: { type: "boolean", description: "held by PauseDeployment until ResumeDeployment; the state stays" },
    awaitingPromotion: {
      type: "boolean",
      description: "a completed stage waits for PromoteDeployment before the next step is queued",
    },
    strategy: { ...str, description: "ALL_AT_ONCE, ROLLING, CANARY, BLUE_GREEN or PILOT" },
    window: {
      type: ["object", "null"],
      description: "the planned window (null: none)",
      properties: { start: nullableDate, end: nullableDate },
    },
    linkedChangeIds: arr(str),
    approvals: {
      ...obj({ required: int, granted: int, group: str }),
      description: "what the environment's protection policy requires, and the approvals granted",
    },
    progress: {
      description: "how far the strategy got",
      ...obj({
        stepsTotal: int,
        stepsCompleted: int,
        stepsFailed: int,
        deployStepsTotal: int,
        deployStepsCompleted: int,
        currentStep: { type: ["object", "null"], properties: { index: int, kind: str, label: str } },
        targetsSucceeded: int,
        targetsFailed: int,
      }),
    },
    artifacts: {
      ...arr(artifactSchema),
      description: "what the deployment deployed (or, before its outcome, planned)",
    },
    restoredArtifacts: {
      type: ["array", "null"],
      items: artifactSchema,
      description:
        "after a rollback: what runs under its artifacts' names after it (the whole baseline, for a rollback recorded " +
        "before rollbacks named their artifacts)",
    },
    reason: { ...str, description: "why it was last paused, cancelled, failed or rolled back" },
    failureReason: str,
    failedTargetCiIds: arr(str),
    rollbackReason: str,
    plannedAt: nullableDate,
    startedAt: nullableDate,
    finishedAt: { ...nullableDate, description: "when it succeeded or failed" },
    rolledBackAt: nullableDate,
    updatedAt: date,
  },
  deploymentExample,
);

const stepSchema = obj({ index: int, kind: str, label: str, targetCiIds: arr(str), state: str });

/** One deployment with its steps and rollback: the detail route and the release overview. */
export const deploymentDetailSchema = obj(
  {
    ...deploymentSchema.properties,
    steps: { ...arr(stepSchema), description: "the strategy expanded into steps, with each one's state" },
    rollback: {
      type: ["object", "null"],
      properties: {
        reason: str,
        automatic: { type: "boolean" },
        fast: { type: "boolean" },
        abandoned: {
          type: ["object", "null"],
          description:
            "the rollback was given up (AbandonRollback): the deployment is FAILED again, and the targets it did " +
            "not restore run what the failure left",
          properties: { reason: str, unrestoredTargetCiIds: arr(str) },
        },
      },
    },
  },
  {
    ...deploymentExample,
    steps: [
      { index: 0, kind: "DEPLOY", label: "canary 10% (1 of 10 targets)", targetCiIds: ["host-17"], state: "COMPLETED" },
    ],
    rollback: { reason: "automatic back-out after failed verification", automatic: true, fast: false, abandoned: null },
  },
);

export const inventoryEntrySchema = obj(
  {
    targetCiId: str,
    targetName: { type: ["string", "null"], description: "the CI's name in the gateway's CMDB view, when known" },
    targetStatus: {
      ...nullable(CI_STATUSES),
      description: "the CI's lifecycle status in the gateway's CMDB view, when known (RETIRED: decommissioned)",
    },
    artifactName: str,
    artifactVersion: str,
    artifactId: str,
    since: { ...date, description: "since when this version runs on the target" },
    deploymentId: { ...str, description: "the deployment whose outcome put this version there" },
    releaseId: str,
    releaseKey: {
      type: ["string", "null"],
      description: "the release's key, when the release events reached the gateway",
    },
    via: { type: "string", enum: OUTCOMES, description: "deployed, left by a failed deployment, or restored" },
  },
  {
    targetCiId: "host-17",
    targetName: "payments-host-17",
    targetStatus: "LIVE",
    artifactName: "payments-api",
    artifactVersion: "4.1.3",
    artifactId: "",
    since: "2026-12-01T09:14:02.000Z",
    deploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
    releaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
    releaseKey: "REL-2026-0042",
    via: "ROLLED_BACK",
  },
);

const environmentExample = {
  environment: "production",
  health: "HEALTHY",
  lastDeploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
  lastReleaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
  lastOutcome: "ROLLED_BACK",
  lastEnvironmentSequence: 42,
  updatedAt: "2026-12-01T09:14:02.000Z",
  liveColour: null,
  retiredTargetCiIds: [],
};

const definitionSchema = {
  type: ["object", "null"],
  description: "as the deployment service defines it (null: no definition reached the gateway)",
  properties: {
    promotionRank: { type: "integer", description: "position in the promotion order, for listing" },
    promotesFrom: { ...str, description: "the environment a package must have succeeded in first (empty: none)" },
    production: {
      type: "boolean",
      description: "as its definition says; when unset there, whether no environment promotes from this one",
    },
    frozen: { type: "boolean", description: "deployments are refused until thawed (an emergency may override)" },
    freezeReason: str,
    protection: {
      ...obj({ approvalGroup: str, quorum: { type: "integer" } }),
      description: "approvals a deployment needs before it starts (quorum 0: none)",
    },
    targetGroups: arr(obj({ name: str, ciIds: arr(str) })),
    executorLabels: { ...arr(str), description: "labels an executor must carry to claim its steps" },
  },
} as const;

/** An environment the gateway knows: its definition, its health from the newest outcome, or both. */
export const knownEnvironmentSchema = obj(
  {
    environment: str,
    definition: definitionSchema,
    health: {
      ...nullable(["HEALTHY", "DEGRADED"]),
      description: "DEGRADED: the newest outcome is a failure; null: none yet",
    },
    lastDeploymentId: { type: ["string", "null"] },
    lastReleaseId: { type: ["string", "null"] },
    lastOutcome: nullable(OUTCOMES),
    lastEnvironmentSequence: { type: ["integer", "null"], description: "0 when the outcome carried no sequence" },
    updatedAt: { ...nullableDate, description: "when its newest outcome happened" },
    liveColour: {
      type: ["string", "null"],
      description: "blue-green: the colour serving traffic, as the newest blue-green outcome left it; null: none yet",
    },
    retiredTargetCiIds: {
      ...arr(str),
      description:
        "the definition's targets the gateway's CMDB view lists as retired, as the definition spells them: a " +
        "deployment whose plan reaches one is refused (gate.target_retired, as far as the deployment service heard " +
        "of the retirement); take them out of the definition",
    },
  },
  {
    ...environmentExample,
    definition: {
      promotionRank: 4,
      promotesFrom: "staging",
      production: true,
      frozen: false,
      freezeReason: "",
      protection: { approvalGroup: "prod-approvers", quorum: 2 },
      targetGroups: [{ name: "rest", ciIds: ["host-17", "host-18"] }],
      executorLabels: ["prod"],
    },
  },
);

export const deploymentEventsQuery = {
  type: "object",
  properties: { releaseId: uuidSchema, environment: environmentName, after: afterSchema },
  additionalProperties: false,
} as const;

export const inventoryEventsQuery = {
  type: "object",
  properties: { after: afterSchema },
  additionalProperties: false,
} as const;
