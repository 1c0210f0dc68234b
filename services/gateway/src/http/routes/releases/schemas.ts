import { ReleasePhaseSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { enumNames } from "../../../projections/enums.js";
import { uuidSchema } from "../../problems.js";
import { arr, nullableDate, obj, str } from "../../schema-parts.js";
import { afterSchema } from "../../sse.js";

const gateSchema = obj({
  phase: str,
  nextPhase: { type: ["string", "null"] },
  open: { type: "boolean" },
  conditions: arr(obj({ rule: str, subject: str, description: str, met: { type: "boolean" } })),
});

export const releaseSchema = {
  type: "object",
  properties: {
    releaseId: { type: "string", format: "uuid" },
    key: { type: "string", examples: ["REL-2026-0042"] },
    title: { type: "string" },
    description: { type: "string" },
    type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
    category: { type: "string" },
    owner: { type: "string" },
    coordinator: { type: "string" },
    stakeholders: { type: "array", items: { type: "string" } },
    risk: { type: "string", enum: ["UNSPECIFIED", "LOW", "MEDIUM", "HIGH", "CRITICAL"] },
    plannedWindow: {
      type: ["object", "null"],
      properties: {
        start: { type: ["string", "null"], format: "date-time" },
        end: { type: ["string", "null"], format: "date-time" },
      },
    },
    phase: { type: "string", enum: enumNames(ReleasePhaseSchema) },
    registeredBy: { type: "string" },
    registeredAt: { type: "string", format: "date-time" },
    version: { type: "integer" },
    updatedAt: { type: "string", format: "date-time" },
    status: { type: "string", enum: ["ACTIVE", "ABANDONED", "CLOSED"] },
    abandonReason: str,
    modelName: str,
    modelVersion: { type: "integer" },
    phaseEntry: { type: "integer" },
    phaseEnteredAt: nullableDate,
    phaseDueAt: nullableDate,
    overdue: { type: "boolean", description: "the current phase's deadline has passed" },
    gate: gateSchema,
    approvals: arr(
      obj({
        approvalId: str,
        phase: str,
        phaseEntry: { type: "integer" },
        approverGroup: str,
        quorum: { type: "integer" },
        requestedBy: str,
        requestedAt: nullableDate,
        status: str,
        votes: arr(obj({ approver: str, approved: { type: "boolean" }, comment: str, at: nullableDate })),
      }),
    ),
    tasks: arr(
      obj({
        taskId: str,
        phase: str,
        phaseEntry: { type: "integer" },
        name: str,
        required: { type: "boolean" },
        fromModel: { type: "boolean" },
        assignee: str,
        status: str,
        dueAt: nullableDate,
        overdue: { type: "boolean", description: "reported overdue (past its due time, not done)" },
      }),
    ),
    package: arr(obj({ artifactId: str, name: str, version: str, sha256: str, configurationItemId: str })),
    packageFrozen: { type: "boolean" },
    linkedChangeRequests: arr(obj({ changeRequestId: str, state: { type: ["string", "null"] } })),
    deadlineMisses: arr(
      obj({ phase: str, phaseEntry: { type: "integer" }, dueAt: nullableDate, escalated: { type: "boolean" } }),
    ),
    backOutPlan: str,
    log: arr(obj({ entryId: str, kind: str, text: str, recordedBy: str, recordedAt: nullableDate })),
    review: {
      type: ["object", "null"],
      properties: {
        outcome: str,
        lessonsLearned: str,
        followUpActions: arr(str),
        reviewedBy: str,
        reviewedAt: nullableDate,
      },
    },
  },
} as const;

export const historySchema = obj({
  seq: { type: "integer" },
  releaseId: str,
  version: { type: "integer" },
  eventType: str,
  occurredAt: { type: "string", format: "date-time" },
  actor: str,
  reason: str,
  phase: str,
  eventId: str,
  correlationId: { ...str, description: "shared by every event one user action caused" },
  causationId: { ...str, description: "the command (request id) or event that caused this one" },
  requestId: str,
});

export const releaseParams = { type: "object", properties: { id: uuidSchema }, required: ["id"] } as const;

export const releaseEventsQuery = {
  type: "object",
  properties: { releaseId: uuidSchema, after: afterSchema },
  additionalProperties: false,
} as const;

export const releaseListQuery = {
  type: "object",
  properties: {
    pageSize: { type: "integer", minimum: 1, maximum: 200, default: 50 },
    pageToken: { type: "string", maxLength: 200 },
    phase: { type: "string", enum: enumNames(ReleasePhaseSchema), description: "ReleasePhase without RELEASE_PHASE_" },
    type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
    owner: { type: "string", description: "the owner's subject, compared exactly as recorded" },
    status: { type: "string", enum: ["ACTIVE", "ABANDONED", "CLOSED"] },
    overdue: { type: "boolean", description: "only releases whose current phase deadline has passed" },
    overdueTasks: { type: "boolean", description: "only releases with a task reported overdue and not done" },
  },
  additionalProperties: false,
} as const;
