import { arr, date, nullableDate, obj, str } from "../../schema-parts.js";
import { deploymentDetailSchema } from "../deployments/schemas.js";
import { releaseSchema } from "../releases/schemas.js";

const int = { type: "integer" } as const;
const windowSchema = {
  type: ["object", "null"],
  properties: { start: nullableDate, end: nullableDate },
} as const;
const r = releaseSchema.properties;

const overviewExample = {
  releaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
  key: "REL-2026-0042",
  title: "Payments 4.2",
  type: "MINOR",
  status: "ACTIVE",
  phase: "DEPLOYMENT",
  owner: "olga",
  plannedWindow: { start: "2026-12-01T08:00:00.000Z", end: "2026-12-01T18:00:00.000Z" },
  gate: { phase: "DEPLOYMENT", nextPhase: "VERIFICATION", open: false, conditions: [] },
  linkedChanges: [
    {
      changeRequestId: "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
      known: true,
      key: "CHG-2026-0107",
      state: "IMPLEMENTING",
    },
  ],
  package: [
    {
      artifactId: "art-payments-api-4.2.0",
      name: "payments-api",
      version: "4.2.0",
      dmlStatus: "ACTIVE",
      integrity: "VERIFIED",
      identityMismatch: [],
      deployable: true,
    },
  ],
  environments: [
    {
      environment: "production",
      current: {
        deploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
        state: "IN_PROGRESS",
        strategy: "CANARY",
        progress: { stepsTotal: 4, stepsCompleted: 1, deployStepsTotal: 3, deployStepsCompleted: 1 },
      },
    },
  ],
  deadlines: { phaseDueAt: "2026-12-01T18:00:00.000Z", overdue: false, misses: [], overdueTasks: [] },
};

export const overviewSchema = {
  type: "object",
  examples: [overviewExample],
  properties: {
    releaseId: r.releaseId,
    key: r.key,
    title: r.title,
    type: r.type,
    status: r.status,
    phase: r.phase,
    owner: r.owner,
    coordinator: r.coordinator,
    plannedWindow: r.plannedWindow,
    registeredAt: date,
    updatedAt: date,
    version: int,
    phaseEntry: r.phaseEntry,
    phaseEnteredAt: r.phaseEnteredAt,
    gate: r.gate,
    approvals: r.approvals,
    tasks: r.tasks,
    linkedChanges: arr(
      obj({
        changeRequestId: str,
        known: { type: "boolean", description: "false: no event of this change reached the gateway yet" },
        key: { type: ["string", "null"] },
        title: { type: ["string", "null"] },
        type: { type: ["string", "null"] },
        state: { type: ["string", "null"], description: "the change's live state from the change events" },
        window: windowSchema,
        updatedAt: nullableDate,
      }),
    ),
    package: arr(
      obj({
        artifactId: str,
        name: str,
        version: str,
        sha256: str,
        configurationItemId: str,
        dmlStatus: { ...str, description: "ACTIVE, QUARANTINED, RETIRED, or UNKNOWN (not in the DML view)" },
        integrity: { ...str, description: "UNVERIFIED, VERIFIED, MISMATCH or UNKNOWN" },
        statusReason: str,
        lastVerifiedAt: nullableDate,
        identityMismatch: {
          ...arr(obj({ field: str, package: str, dml: str })),
          description:
            "where the package names the artifact otherwise than the DML registered it (name, version, sha256): " +
            "the deployment gates refuse a plan naming it as the package does (name, version), or the package " +
            "records the checksum of other bytes",
        },
        deployable: {
          type: "boolean",
          description: "ACTIVE, VERIFIED and named in the package as the DML registered it (name, version, checksum)",
        },
      }),
    ),
    packageFrozen: r.packageFrozen,
    environments: arr(
      obj({
        environment: str,
        current: {
          ...deploymentDetailSchema,
          type: ["object", "null"],
          description:
            "the deployment that began last (one not begun changed nothing), else the newest plan still to begin; null when every plan was cancelled",
        },
        deployments: arr(deploymentDetailSchema),
      }),
    ),
    deadlines: obj({
      phaseDueAt: nullableDate,
      overdue: { type: "boolean", description: "the current phase's deadline has passed" },
      misses: { ...r.deadlineMisses, description: "every ReleaseDeadlineMissed: the SLA breaches" },
      overdueTasks: arr(obj({ taskId: str, name: str, phase: str, assignee: str, dueAt: nullableDate })),
    }),
    log: { ...r.log, description: "the release's deviations, risks and issues" },
    backOutPlan: r.backOutPlan,
    review: r.review,
  },
} as const;
