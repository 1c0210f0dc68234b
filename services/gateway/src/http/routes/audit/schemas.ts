import { VIEWS } from "../../../projections/audit/subjects.js";
import { uuidSchema } from "../../problems.js";
import { arr, date, obj, str } from "../../schema-parts.js";
import { afterSchema } from "../../sse.js";
import { namedEnvironment } from "../deployments/schemas.js";

const filterText = { type: "string", minLength: 1, maxLength: 200 } as const;

const auditFilters = {
  actor: { ...filterText, description: "who did it (the actor every event records)" },
  release: { ...uuidSchema, description: "a release id: its events, and the changes' and deployments' naming it" },
  change: { ...uuidSchema, description: "a change request id" },
  environment: {
    ...namedEnvironment,
    description:
      "events concerning this environment: a deployment's by its environment, a change's by the environments the " +
      "change names (its implementation's by the deployment's environment too; a change naming none is " +
      "production's: under each environment defined or deployed to that is production), a freeze's by its scope",
  },
  correlation: { ...filterText, description: "a correlation id: every event one action caused" },
} as const;

export const auditQuery = {
  type: "object",
  properties: {
    ...auditFilters,
    from: { type: "string", format: "date-time", description: "occurred at or after" },
    to: { type: "string", format: "date-time", description: "occurred before" },
    after: { ...afterSchema, description: "page cursor: entries after this seq (nextAfter of the previous page)" },
    limit: { type: "integer", minimum: 1, maximum: 500, default: 100 },
  },
  additionalProperties: false,
} as const;

export const auditStreamQuery = {
  type: "object",
  properties: { ...auditFilters, after: afterSchema },
  additionalProperties: false,
} as const;

export const viewStreamQuery = {
  type: "object",
  properties: {
    view: { type: "string", enum: VIEWS, description: "only changes of this combined view" },
    release: auditFilters.release,
    environment: auditFilters.environment,
    after: afterSchema,
  },
  additionalProperties: false,
} as const;

export const auditEntrySchema = {
  ...obj({
    seq: { type: "integer", description: "projection order: the page cursor and the SSE id" },
    eventId: str,
    source: { type: "string", enum: ["release", "change", "configuration", "deployment"] },
    eventType: { ...str, description: "the full protobuf message name (ce_type)" },
    subject: { ...str, description: "the aggregate id (ce_subject, the Kafka key)" },
    streamVersion: { type: "integer" },
    occurredAt: date,
    actor: str,
    correlationId: { ...str, description: "shared by every event one user action caused" },
    causationId: { ...str, description: "the command (request id) or event that caused this one" },
    requestId: str,
    releaseId: str,
    changeRequestId: str,
    deploymentId: str,
    environments: arr(str),
    views: { ...arr(str), description: "the combined views this event changed" },
  }),
  examples: [
    {
      seq: 1042,
      eventId: "9b2f6a1e-0c3d-4e5f-8a7b-6c5d4e3f2a1b",
      source: "deployment",
      eventType: "rdm.deployment.v1.DeploymentSucceeded",
      subject: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
      streamVersion: 9,
      occurredAt: "2026-12-01T09:12:30.000Z",
      actor: "executor-1",
      correlationId: "c0ffee00-1234-4abc-8def-0123456789ab",
      causationId: "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918",
      requestId: "",
      releaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
      changeRequestId: "",
      deploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
      environments: ["production"],
      views: ["overview", "calendar", "inventory", "kpis", "audit"],
    },
  ],
} as const;

export const auditPageSchema = obj({
  entries: arr(auditEntrySchema),
  nextAfter: { type: ["integer", "null"], description: "pass as `after` for the next page; null: no more now" },
});
