// The change views' schemas: change requests, freeze windows, releases on the calendar, collisions.
import { uuidSchema } from "../../problems.js";

export const windowSchema = {
  type: ["object", "null"],
  properties: {
    start: { type: ["string", "null"], format: "date-time" },
    end: { type: ["string", "null"], format: "date-time" },
  },
} as const;

export const collisionSchema = {
  type: "object",
  properties: {
    changeRequestId: { type: "string", format: "uuid" },
    key: { type: "string" },
    state: { type: "string" },
    window: windowSchema,
    ciIds: { type: "array", items: { type: "string" } },
  },
} as const;

export const stringArray = { type: "array", items: { type: "string" } } as const;

export const changeSchema = {
  type: "object",
  properties: {
    changeRequestId: { type: "string", format: "uuid" },
    key: { type: "string", examples: ["CHG-2026-0042"] },
    type: { type: "string", enum: ["STANDARD", "NORMAL", "EMERGENCY"] },
    state: {
      type: "string",
      enum: [
        "DRAFT",
        "SUBMITTED",
        "ASSESSED",
        "AUTHORIZED",
        "REJECTED",
        "SCHEDULED",
        "IMPLEMENTING",
        "IMPLEMENTED",
        "FAILED",
        "REVIEWED",
        "CLOSED",
        "CANCELLED",
      ],
    },
    title: { type: "string" },
    description: { type: "string" },
    justification: { type: "string" },
    requester: { type: "string" },
    affectedCiIds: stringArray,
    environments: stringArray,
    implementationPlan: { type: "string" },
    testPlan: { type: "string" },
    backoutPlan: { type: "string" },
    impact: { type: "string" },
    urgency: { type: "string" },
    risk: { type: "string" },
    board: { type: "string", enum: ["UNSPECIFIED", "CAB", "ECAB", "PRE_AUTHORIZED"] },
    requiredApprovals: { type: "integer" },
    approvals: {
      type: "array",
      items: {
        type: "object",
        properties: {
          approver: { type: "string" },
          decision: { type: "string", enum: ["APPROVED", "REJECTED"] },
          comment: { type: "string" },
          decidedAt: { type: "string", format: "date-time" },
        },
      },
    },
    window: windowSchema,
    linkedReleaseId: { type: "string" },
    templateId: { type: "string" },
    assessmentNotes: { type: "string" },
    rejectionReason: { type: "string" },
    overriddenFreezeIds: stringArray,
    freezeOverrideJustification: { type: "string" },
    /** Collisions the service reported when the change was scheduled. */
    schedulingCollisions: { type: "array", items: collisionSchema },
    tasks: {
      type: "array",
      items: {
        type: "object",
        properties: {
          taskId: { type: "string" },
          title: { type: "string" },
          assignee: { type: "string" },
          state: { type: "string" },
          completedBy: { type: "string" },
        },
      },
    },
    failureReason: { type: "string" },
    reviewOutcome: { type: "string" },
    reviewNotes: { type: "string" },
    cancellationReason: { type: "string" },
    cancelledBy: { type: "string" },
    /** IMPLEMENTING only: the deployment whose success awaits the change's open tasks (the last one's completion implements it); empty otherwise. */
    awaitingTasksDeploymentId: { type: "string" },
    awaitingTasksEnvironment: { type: "string" },
    /** The deployment whose success implemented the change (its back-out fails the change); empty when none did. */
    implementedByDeploymentId: { type: "string" },
    /** A change naming several environments: those implemented before the success that implemented it (the last one's, or production's). */
    implementedEnvironments: { type: "array", items: { type: "string" } },
    /** The earliest commit of the work the change ships, when its requester gave one (lead time starts there). */
    firstCommitTime: { type: ["string", "null"], format: "date-time" },
    raisedAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
    version: { type: "integer" },
  },
} as const;

export const changeDetailSchema = {
  ...changeSchema,
  properties: {
    ...changeSchema.properties,
    /** Booked changes (scheduled or implementing) touching the same CIs in an overlapping window, now. */
    collisions: { type: "array", items: collisionSchema },
  },
} as const;

export const freezeWindowSchema = {
  type: "object",
  properties: {
    freezeWindowId: { type: "string", format: "uuid" },
    name: { type: "string" },
    reason: { type: "string" },
    window: windowSchema,
    scope: {
      type: "object",
      properties: { all: { type: "boolean" }, ciIds: stringArray, environments: stringArray },
    },
    lifted: { type: "boolean" },
    declaredBy: { type: "string" },
  },
} as const;

/** A release as the calendar shows it: only what places it there, the rest is at /v1/releases/{id}. */
export const calendarReleaseSchema = {
  type: "object",
  properties: {
    releaseId: { type: "string", format: "uuid" },
    key: { type: "string", examples: ["REL-2026-0042"] },
    title: { type: "string" },
    type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
    phase: { type: "string" },
    owner: { type: "string" },
    window: windowSchema,
  },
} as const;

export const changeListQuery = {
  type: "object",
  properties: {
    pageSize: { type: "integer", minimum: 1, maximum: 200, default: 50 },
    pageToken: { type: "string", maxLength: 200 },
    state: {
      type: "string",
      maxLength: 300,
      description:
        "comma-separated states, e.g. SCHEDULED,IMPLEMENTING: ChangeState names without CHANGE_STATE_, in any case; another name is 400",
    },
    type: {
      type: "string",
      maxLength: 100,
      description:
        "comma-separated types, e.g. NORMAL,EMERGENCY: ChangeType names without CHANGE_TYPE_, in any case; another name is 400",
    },
    ciId: { type: "string", maxLength: 200 },
    linkedReleaseId: uuidSchema,
    from: { type: "string", format: "date-time", description: "changes whose window ends after this instant" },
    to: {
      type: "string",
      format: "date-time",
      description: "changes whose window starts before this instant; with from, it must be after from (else 400)",
    },
    q: { type: "string", maxLength: 200 },
  },
  additionalProperties: false,
} as const;

export const calendarSchema = {
  type: "object",
  properties: {
    from: { type: "string", format: "date-time" },
    to: { type: "string", format: "date-time" },
    changes: { type: "array", items: changeSchema },
    /** Active releases planned in the range, by window start, then key. */
    releases: { type: "array", items: calendarReleaseSchema },
    freezeWindows: { type: "array", items: freezeWindowSchema },
    collisions: {
      type: "array",
      items: {
        type: "object",
        properties: {
          changes: { type: "array", items: collisionSchema },
          ciIds: stringArray,
        },
      },
    },
  },
} as const;
