import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Severity, type Subscription } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import type { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

/** Events that ask for more attention than a plain fact; any other event is INFO. */
const SEVERITIES: Record<string, Severity> = {
  "rdm.release.v1.ReleaseDeadlineEscalated": Severity.CRITICAL,
  "rdm.deployment.v1.DeploymentFailed": Severity.CRITICAL,
  "rdm.deployment.v1.DeploymentRolledBack": Severity.CRITICAL,
  "rdm.deployment.v1.DeploymentRollbackStarted": Severity.CRITICAL,
  "rdm.deployment.v1.DeploymentRollbackAbandoned": Severity.CRITICAL,
  "rdm.change.v1.ChangeRequestFailed": Severity.CRITICAL,
  "rdm.release.v1.ReleaseDeadlineMissed": Severity.WARNING,
  "rdm.release.v1.ReleaseTaskOverdue": Severity.WARNING,
  "rdm.release.v1.ReleaseApprovalRejected": Severity.WARNING,
  "rdm.release.v1.ReleaseAbandoned": Severity.WARNING,
  "rdm.deployment.v1.DeploymentStepFailed": Severity.WARNING,
  "rdm.deployment.v1.DeploymentCancelled": Severity.WARNING,
  "rdm.change.v1.ChangeRequestRejected": Severity.WARNING,
  "rdm.change.v1.ChangeRequestCancelled": Severity.WARNING,
  "rdm.configuration.v1.ArtifactQuarantined": Severity.WARNING,
};

export const severityOf = (eventType: string): Severity => SEVERITIES[eventType] ?? Severity.INFO;

/**
 * An id or name as compared: without case. A UUID is one value whatever its case (events from
 * before inputs were lowercased keep theirs), and the deployment service takes a target written
 * in capitals for the configuration item it names, as its gates do.
 */
const idKey = (id: string) => id.toLowerCase();

/** The fields (JSON names) that say what an event is about, whatever the service. */
const SUBJECT_FIELDS = {
  releaseIds: ["releaseId", "linkedReleaseId"],
  // A deployment's plan names the changes linked to it, its start and outcomes those it implements.
  changeRequestIds: ["changeRequestId", "changeRequestIds", "linkedChangeIds"],
  // A change names the environments it touches; an environment's own events carry its
  // definition (an object: its name is taken, see subjectsOf).
  environments: ["environment", "environmentId", "environments"],
  // A freeze's scope names its CIs (`ciIds`).
  serviceIds: ["ciId", "configurationItemId", "affectedCiIds", "targetCiIds", "failedTargetCiIds", "ciIds"],
} as const;

export type EventSubjects = { [K in keyof typeof SUBJECT_FIELDS]: Set<string> };

export const isObject = (value: JsonValue | undefined): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The change a change event (of the change topic) is about; undefined for other events. */
export const changeIdOf = (type: string, json: JsonObject): string | undefined =>
  type.startsWith("rdm.change.v1.") && typeof json.changeRequestId === "string" ? json.changeRequestId : undefined;

/** Every id an event's JSON form names, at any depth (e.g. the target CIs of each deployed artifact). */
export function subjectsOf(json: JsonObject): EventSubjects {
  const subjects: EventSubjects = {
    releaseIds: new Set(),
    changeRequestIds: new Set(),
    environments: new Set(),
    serviceIds: new Set(),
  };
  const keys = Object.entries(SUBJECT_FIELDS) as [keyof EventSubjects, readonly string[]][];
  const visit = (value: JsonValue | undefined): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === "object")
      for (const [field, inner] of Object.entries(value)) {
        // A subscription's filter names what it wants, not what its own event is about.
        if (field === "filter") continue;
        for (const [subject, names] of keys)
          if (names.includes(field))
            for (const id of [inner].flat()) {
              const named = isObject(id) && subject === "environments" ? id.name : id;
              if (typeof named === "string" && named) subjects[subject].add(idKey(named));
            }
        visit(inner);
      }
  };
  visit(json);
  return subjects;
}

/** One event as the notifier sees it. */
export interface NotifiedEvent {
  type: string;
  occurredAt: Date;
  json: JsonObject;
  /** The type of the release the event is about, when the release service knows it. */
  releaseType: ReleaseType | undefined;
  /** The environments of the change the event is about (besides any the event names itself). */
  changeEnvironments?: readonly string[] | undefined;
  /** The changes of the deployment the event is about, for its events that do not name them. */
  deploymentChanges?: readonly string[] | undefined;
  /** The configuration items the package of the deployment's release maps its artifacts to. */
  deploymentServices?: readonly string[] | undefined;
}

const anyOf = (wanted: readonly string[], present: Set<string>) =>
  !wanted.length || wanted.some((w) => present.has(idKey(w)));

/** What an event is about, as filters match it: its subjects, its change's and deployment's too. */
export type MatchedSubjects = EventSubjects & { everywhere: boolean };

/**
 * The event's subjects for filterMatches, read once for all the subscriptions it is matched to
 * (`subjects`: its JSON's, when read already; they are added to).
 */
export function matchedSubjects(event: NotifiedEvent, subjects = subjectsOf(event.json)): MatchedSubjects {
  for (const environment of event.changeEnvironments ?? []) subjects.environments.add(idKey(environment));
  for (const id of event.deploymentChanges ?? []) subjects.changeRequestIds.add(idKey(id));
  for (const id of event.deploymentServices ?? []) subjects.serviceIds.add(idKey(id));
  // A freeze of everything (declared or lifted) is about every environment and service.
  return { ...subjects, everywhere: isObject(event.json.scope) && event.json.scope.all === true };
}

/** Whether the subscription's filter takes the event (every dimension it lists must match). */
export function filterMatches(
  subscription: Subscription,
  event: NotifiedEvent,
  subjects: MatchedSubjects = matchedSubjects(event),
): boolean {
  const f = subscription.filter;
  if (!f) return true;
  const { everywhere } = subjects;
  return (
    (!f.eventTypes.length || f.eventTypes.includes(event.type)) &&
    anyOf(f.releaseIds, subjects.releaseIds) &&
    anyOf(f.changeRequestIds, subjects.changeRequestIds) &&
    (everywhere || anyOf(f.environments, subjects.environments)) &&
    (everywhere || anyOf(f.serviceIds, subjects.serviceIds)) &&
    (!f.releaseTypes.length || (event.releaseType !== undefined && f.releaseTypes.includes(event.releaseType))) &&
    severityOf(event.type) >= f.minSeverity
  );
}
