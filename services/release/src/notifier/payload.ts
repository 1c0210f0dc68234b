import { createRegistry, type DescMessage, isMessage, type JsonObject, type Message, toJson } from "@bufbuild/protobuf";
import { type CloudEvent, decodeEvent } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { file_rdm_configuration_v1_events } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { file_rdm_deployment_v1_events } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { file_rdm_notification_v1_events } from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import { Severity } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import {
  file_rdm_release_v1_events,
  ReleaseChangeRequestLinkedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { changeIdOf, type EventSubjects, isObject, severityOf, subjectsOf } from "../domain/subscription/matching.js";

/** Every event type of the four services' topics (and the subscriptions' own), for decoding and JSON. */
export const notifiableEvents = createRegistry(
  file_rdm_release_v1_events,
  file_rdm_change_v1_events,
  file_rdm_configuration_v1_events,
  file_rdm_deployment_v1_events,
  file_rdm_notification_v1_events,
);

/** The event types a filter may name: the messages of those files that carry an event's metadata. */
export const EVENT_TYPES: ReadonlySet<string> = new Set(
  [...notifiableEvents].flatMap((type) =>
    type.kind === "message" && type.field.metadata?.message?.typeName === "rdm.common.v1.EventMetadata"
      ? [type.typeName]
      : [],
  ),
);

/** The version of notification-payload.schema.json the payload follows. */
export const PAYLOAD_SCHEMA_VERSION = "1";

/** The body a webhook receives: see services/release/notification-payload.schema.json. */
export interface NotificationPayload {
  schemaVersion: string;
  notificationId: string;
  subscriptionId: string;
  eventId: string;
  eventType: string;
  source: string;
  subject: string;
  occurredAt: string;
  severity: string;
  title: string;
  links: Links;
  /** The event in the protobuf JSON mapping (enum values by name, camelCase fields). */
  event: JsonObject;
  test?: boolean;
}

/**
 * An event from a topic, decoded. Undefined for a type no published schema names; a
 * PermanentError (dead letter) for bytes that do not decode.
 */
export function decodeNotifiable(event: CloudEvent): { schema: DescMessage; message: Message } | undefined {
  const schema = notifiableEvents.getMessage(event.type);
  if (!schema) return undefined;
  const message = decodeEvent(schema, event);
  // A link said again (relinked) for the change service changes nothing a subscriber heard of.
  if (isMessage(message, ReleaseChangeRequestLinkedSchema) && message.relinked) return undefined;
  return { schema, message };
}

export const eventJson = (schema: DescMessage, message: Message): JsonObject =>
  toJson(schema, message, { registry: notifiableEvents }) as JsonObject;

export const occurredAtOf = (message: Message, fallback: Date): Date => {
  const at = (message as { metadata?: { occurredAt?: Parameters<typeof instantOf>[0] } }).metadata?.occurredAt;
  return instantOf(at, fallback);
};

/** The deployment an event is about: its own, or the one a release's deployment record names. */
function deploymentIdOf(json: JsonObject): string | undefined {
  const own = json.deploymentId;
  const recorded = isObject(json.deployment) ? json.deployment.deploymentId : undefined;
  return [own, recorded].find((id): id is string => typeof id === "string" && id !== "");
}

/** The links a payload may carry; {{link}} takes the first of them in this order. */
const LINK_ORDER = ["release", "change", "deployment", "environment", "artifact", "configurationItem"] as const;
type Links = Partial<Record<(typeof LINK_ORDER)[number], string>>;

/** Links to the gateway's views of what the event is about (names in LINK_ORDER). */
function linksOf(base: string, subjects: EventSubjects, json: JsonObject): Links {
  const links: Links = {};
  const first = (set: Set<string>) => [...set][0];
  const release = first(subjects.releaseIds);
  if (release) links.release = `${base}/v1/releases/${encodeURIComponent(release)}`;
  const change = first(subjects.changeRequestIds);
  if (change) links.change = `${base}/v1/changes/${encodeURIComponent(change)}`;
  const deployment = deploymentIdOf(json);
  if (deployment) links.deployment = `${base}/v1/deployments/${encodeURIComponent(deployment)}`;
  const environment = first(subjects.environments);
  if (environment) links.environment = `${base}/v1/environments/${encodeURIComponent(environment)}/inventory`;
  if (typeof json.artifactId === "string")
    links.artifact = `${base}/v1/dml/artifacts/${encodeURIComponent(json.artifactId)}`;
  const item = first(subjects.serviceIds);
  if (item) links.configurationItem = `${base}/v1/cmdb/items/${encodeURIComponent(item)}`;
  return links;
}

/**
 * A short human line: the event's name in words, what it is about (a change's events: the change;
 * others: the release when there is one) and the environments it names.
 */
function titleOf(
  eventType: string,
  json: JsonObject,
  subjects: EventSubjects,
  keys: { releaseKey?: string | undefined; changeKey?: string | undefined },
): string {
  const name = eventType.slice(eventType.lastIndexOf(".") + 1).replace(/([a-z])([A-Z])/g, "$1 $2");
  const change = changeIdOf(eventType, json);
  // A change's own events are about the change, by its key when known, even those naming the
  // deployment that moved it.
  const ids = change
    ? [keys.changeKey, json.key, change]
    : [deploymentIdOf(json), json.changeRequestId, json.artifactId, json.ciId];
  const about = (change ? undefined : keys.releaseKey) ?? ids.find((v) => typeof v === "string" && v !== "");
  const where = subjects.environments.size ? ` in ${[...subjects.environments].join(", ")}` : "";
  return about ? `${name}: ${about}${where}` : `${name}${where}`;
}

export interface PayloadInput {
  notificationId: string;
  subscriptionId: string;
  eventId: string;
  eventType: string;
  source: string;
  subject: string;
  occurredAt: Date;
  json: JsonObject;
  releaseKey?: string | undefined;
  /** The key of the change a change event is about, when the notifier knows it. */
  changeKey?: string | undefined;
  linkBaseUrl: string;
}

export function notificationPayload(input: PayloadInput): NotificationPayload {
  const subjects = subjectsOf(input.json);
  return {
    schemaVersion: PAYLOAD_SCHEMA_VERSION,
    notificationId: input.notificationId,
    subscriptionId: input.subscriptionId,
    eventId: input.eventId,
    eventType: input.eventType,
    source: input.source,
    subject: input.subject,
    occurredAt: input.occurredAt.toISOString(),
    severity: Severity[severityOf(input.eventType)] ?? "INFO",
    title: titleOf(input.eventType, input.json, subjects, input),
    links: linksOf(input.linkBaseUrl.replace(/\/+$/, ""), subjects, input.json),
    event: input.json,
  };
}

/** A payload value as chat text: strings, numbers and booleans as they are, lists of them joined; others empty. */
function asText(value: unknown): string {
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return String(value);
  return Array.isArray(value) && value.every((v) => typeof v !== "object") ? value.join(", ") : "";
}

/**
 * The text of a chat target: its template with each {{path}} replaced by the payload's field at
 * that dotted path (e.g. {{title}}, {{event.environment}}, {{links.release}}), or {{link}}, the
 * first link; a path naming nothing, or an object, renders empty.
 */
export function renderChatText(template: string, payload: NotificationPayload): string {
  // By name: a payload read back from jsonb has its keys in jsonb's order, not linksOf's.
  const link = LINK_ORDER.map((name) => payload.links[name]).find(Boolean) ?? "";
  const fields: Record<string, unknown> = { ...payload, link };
  return template.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, path: string) =>
    asText(
      path
        .split(".")
        .reduce<unknown>(
          (at, key) =>
            at && typeof at === "object" && Object.hasOwn(at, key) ? (at as Record<string, unknown>)[key] : undefined,
          fields,
        ),
    ),
  );
}
