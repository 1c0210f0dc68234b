import { arr, nullableDate, obj, str } from "../../schema-parts.js";
import { calendarSchema as changeCalendarSchema, windowSchema } from "../changes/schemas.js";
import { namedEnvironment } from "../deployments/schemas.js";

export const calendarQuery = {
  type: "object",
  properties: {
    from: { type: "string", format: "date-time", examples: ["2026-12-01T00:00:00Z"] },
    to: {
      type: "string",
      format: "date-time",
      description: "after from, at most 366 days after it",
      examples: ["2026-12-08T00:00:00Z"],
    },
    environment: { ...namedEnvironment, description: "only what concerns this environment" },
  },
  required: ["from", "to"],
  additionalProperties: false,
} as const;

const itemSchema = obj({
  type: { type: "string", enum: ["change", "deployment", "freeze"] },
  id: str,
  label: { ...str, description: "a change's key, a deployment's environment, a freeze window's name" },
  window: windowSchema,
});

export const conflictSchema = {
  ...obj({
    kind: {
      type: "string",
      enum: ["CHANGE_CHANGE", "CHANGE_FREEZE", "DEPLOYMENT_FREEZE", "DEPLOYMENT_DEPLOYMENT", "CHANGE_DEPLOYMENT"],
    },
    items: arr(itemSchema),
    ciIds: { ...arr(str), description: "the configuration items both touch (empty: a whole-environment conflict)" },
    environment: { type: ["string", "null"] },
  }),
  examples: [
    {
      kind: "DEPLOYMENT_FREEZE",
      items: [
        {
          type: "deployment",
          id: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
          label: "production",
          window: { start: "2026-12-20T08:00:00.000Z", end: "2026-12-20T10:00:00.000Z" },
        },
        {
          type: "freeze",
          id: "2f0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
          label: "year-end freeze",
          window: { start: "2026-12-18T00:00:00.000Z", end: "2027-01-04T00:00:00.000Z" },
        },
      ],
      ciIds: [],
      environment: "production",
    },
  ],
} as const;

export const calendarDeploymentSchema = obj({
  deploymentId: str,
  releaseId: str,
  releaseKey: { type: ["string", "null"] },
  environment: str,
  state: str,
  strategy: str,
  window: obj({ start: nullableDate, end: nullableDate }),
  linkedChangeIds: arr(str),
  changeRequestIds: {
    ...arr(str),
    description:
      "the changes its start checked (once started; from its begin those of them its release still listed; for deployments started before the gateway kept them, after rebuild-views), which it implements like linkedChangeIds: neither is a CHANGE_DEPLOYMENT conflict with it",
  },
});

export const calendarSchema = {
  type: "object",
  properties: {
    ...changeCalendarSchema.properties,
    environment: { type: ["string", "null"] },
    deployments: { ...arr(calendarDeploymentSchema), description: "planned deployments with a window in the range" },
    collisions: {
      ...changeCalendarSchema.properties.collisions,
      description: "booked changes sharing CIs in overlapping windows (the CHANGE_CHANGE conflicts, as pairs)",
    },
    conflicts: arr(conflictSchema),
  },
} as const;
