/**
 * What an event is about, read from its fields by name, so a new event type is placed without
 * code: a `releaseId` (or a change's `linkedReleaseId`), a `changeRequestId`, a `deploymentId`,
 * an `environment` (a name, or an Environment message). The few events that name a subject
 * otherwise are listed in SUBJECT_OVERRIDES.
 */
import type { Message } from "@bufbuild/protobuf";
import { ENVIRONMENT_NAMING_SCHEMAS } from "@rdm/domain-kernel/change";

export interface EventSubjects {
  releaseId: string;
  changeRequestId: string;
  deploymentId: string;
  environments: string[];
}

type Fields = Record<string, unknown>;
const text = (value: unknown) => (typeof value === "string" ? value : "");

const changeEnvironments = (m: Fields) => ({ environments: [...((m.environments as string[]) ?? [])] });

/** Events whose subjects are not (only) in the fields read by name. */
const SUBJECT_OVERRIDES: Record<string, (m: Fields) => Partial<EventSubjects>> = {
  "rdm.change.v1.FreezeWindowDeclared": (m) => ({
    environments: [...((m.scope as { environments?: string[] } | undefined)?.environments ?? [])],
  }),
  ...Object.fromEntries(ENVIRONMENT_NAMING_SCHEMAS.map((schema) => [schema.typeName, changeEnvironments])),
};

export function subjectsOf(message: Message): EventSubjects {
  const m = message as unknown as Fields;
  const environment = m.environment;
  const environmentName =
    typeof environment === "string" ? environment : text((environment as { name?: unknown } | undefined)?.name);
  const subjects: EventSubjects = {
    releaseId: text(m.releaseId) || text(m.linkedReleaseId),
    changeRequestId: text(m.changeRequestId),
    deploymentId: text(m.deploymentId),
    environments: environmentName ? [environmentName] : [],
  };
  return { ...subjects, ...SUBJECT_OVERRIDES[message.$typeName]?.(m) };
}

/** The combined views. */
export const VIEWS = ["overview", "calendar", "inventory", "kpis", "audit"] as const;
export type View = (typeof VIEWS)[number];

/** Which combined views an event of a service changes (every event is in the audit trail). */
const VIEWS_BY_SOURCE: Record<string, View[]> = {
  release: ["overview", "calendar", "kpis", "audit"],
  change: ["overview", "calendar", "audit"],
  configuration: ["overview", "inventory", "audit"],
  deployment: ["overview", "calendar", "inventory", "kpis", "audit"],
};

/** Event types that change fewer views than their service's default. */
const VIEWS_BY_TYPE: Record<string, View[]> = {
  "rdm.release.v1.ReleaseModelVersionCreated": ["audit"],
  "rdm.release.v1.ReleaseNotificationRequested": ["audit"],
  "rdm.change.v1.StandardChangeTemplateRegistered": ["audit"],
  "rdm.change.v1.StandardChangeTemplateRetired": ["audit"],
  "rdm.deployment.v1.DeploymentTargetProgressed": ["overview", "audit"],
  "rdm.deployment.v1.DeploymentVerificationRecorded": ["overview", "audit"],
  "rdm.deployment.v1.EnvironmentRegistered": ["inventory", "calendar", "audit"],
  "rdm.deployment.v1.EnvironmentChanged": ["inventory", "calendar", "audit"],
};

/** Notification subscriptions' events (on the release topic) change no combined view but the audit. */
export const viewsOf = (source: string, eventType: string): View[] =>
  VIEWS_BY_TYPE[eventType] ??
  (eventType.startsWith("rdm.notification.") ? ["audit"] : undefined) ??
  VIEWS_BY_SOURCE[source] ?? ["audit"];
