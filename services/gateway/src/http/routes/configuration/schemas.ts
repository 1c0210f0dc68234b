// The configuration views' schemas: CMDB items and relationships, DML artifacts, baselines.

export const CI_TYPES = [
  "BUSINESS_SERVICE",
  "SERVICE",
  "APPLICATION",
  "COMPONENT",
  "HOST",
  "DATABASE",
  "ENVIRONMENT",
  "NETWORK",
  "OTHER",
] as const;
export const CI_STATUSES = ["PLANNED", "IN_DEVELOPMENT", "LIVE", "MAINTENANCE", "RETIRED"] as const;
export const RELATIONSHIP_TYPES = ["DEPENDS_ON", "RUNS_ON", "PART_OF", "CONNECTS_TO"] as const;

export const ciSchema = {
  type: "object",
  properties: {
    ciId: { type: "string" },
    name: { type: "string" },
    type: { type: "string", enum: CI_TYPES },
    owner: { type: "string" },
    status: { type: "string", enum: CI_STATUSES },
    attributes: { type: "object", additionalProperties: { type: "string" } },
    version: { type: "integer" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
} as const;

export const relationshipSchema = {
  type: "object",
  properties: {
    sourceCiId: { type: "string" },
    sourceName: { type: ["string", "null"] },
    type: { type: "string", enum: RELATIONSHIP_TYPES },
    targetCiId: { type: "string" },
    targetName: { type: ["string", "null"] },
  },
} as const;

export const artifactSchema = {
  type: "object",
  properties: {
    artifactId: { type: "string" },
    name: { type: "string" },
    version: { type: "string" },
    sha256: { type: "string" },
    sizeBytes: { type: "integer" },
    mediaUri: { type: "string" },
    dependencies: {
      type: "array",
      items: { type: "object", properties: { name: { type: "string" }, versionRange: { type: "string" } } },
    },
    status: { type: "string", enum: ["ACTIVE", "QUARANTINED", "RETIRED"] },
    integrity: { type: "string", enum: ["UNVERIFIED", "VERIFIED", "MISMATCH"] },
    statusReason: { type: "string" },
    registeredBy: { type: "string" },
    registeredAt: { type: "string", format: "date-time" },
    lastVerifiedAt: { type: ["string", "null"], format: "date-time" },
  },
} as const;

export const entrySchema = {
  type: "object",
  properties: {
    ciId: { type: "string" },
    ciName: { type: ["string", "null"] },
    artifactName: { type: "string" },
    artifactVersion: { type: "string" },
    artifactId: { type: "string" },
    deploymentId: { type: "string" },
    deployedAt: { type: "string", format: "date-time" },
  },
} as const;

export const baselineSchema = {
  type: "object",
  properties: {
    environment: { type: "string" },
    health: { type: "string", enum: ["HEALTHY", "DEGRADED"] },
    lastDeploymentId: { type: "string" },
    entries: { type: "array", items: entrySchema },
    lastKnownGood: { type: "array", items: entrySchema },
    lastKnownGoodDeploymentId: { type: ["string", "null"] },
    lastKnownGoodAt: { type: ["string", "null"], format: "date-time" },
    version: { type: "integer" },
    updatedAt: { type: "string", format: "date-time" },
  },
} as const;

/** One CI with its relationships both ways and its history. */
export const ciDetailSchema = {
  type: "object",
  properties: {
    item: ciSchema,
    outgoing: { type: "array", items: relationshipSchema },
    incoming: { type: "array", items: relationshipSchema },
    history: {
      type: "array",
      items: {
        type: "object",
        properties: {
          version: { type: "integer" },
          occurredAt: { type: "string", format: "date-time" },
          actor: { type: "string" },
          eventType: { type: "string" },
          summary: { type: "string" },
        },
      },
    },
  },
} as const;
