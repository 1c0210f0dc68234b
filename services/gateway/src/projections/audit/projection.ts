import type { DescMessage } from "@bufbuild/protobuf";
import { namesChangeEnvironments } from "@rdm/domain-kernel/change";
import { textArrayOfJson } from "@rdm/eventstore";
import {
  CHANGE_EVENTS_TOPIC,
  CONFIGURATION_EVENTS_TOPIC,
  DEPLOYMENT_EVENTS_TOPIC,
  RELEASE_EVENTS_TOPIC,
} from "@rdm/messaging";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { file_rdm_configuration_v1_events } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { file_rdm_deployment_v1_events } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { file_rdm_notification_v1_events } from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { isUuid } from "@rdm/runtime/process";
import type pg from "pg";
import { collected, type ProjectedEvent, type Projection, serializedBy } from "../projection.js";
import { auditMigrations } from "./migrations.js";
import { type EventSubjects, subjectsOf, viewsOf } from "./subjects.js";

/** NOTIFY channel raised (at commit) whenever audit rows are added; wakes the audit and view streams. */
export const AUDIT_CHANNEL = "rdm_gateway_audit";

/**
 * Subjects an event does not carry but its own stream's earlier events did: a deployment's step
 * events name only the deployment (its plan names the release and environment); a change event
 * names its environments only when raised or updated (those of its implementation name the
 * deployment's environment, which is added to the change's, as the notifier matches them). Only
 * the event's own stream: it is on the same partition, so what it finds does not depend on how
 * other partitions interleave.
 */
async function completeSubjects(
  tx: pg.PoolClient,
  source: string,
  type: string,
  s: EventSubjects,
): Promise<EventSubjects> {
  if (source === "deployment" && s.deploymentId && (!s.releaseId || !s.environments.length)) {
    const { rows } = await tx.query<{ release_id: string; environment: string }>(
      "SELECT release_id, environment FROM deployment_plan_view WHERE deployment_id = $1",
      [s.deploymentId],
    );
    const plan = rows[0];
    if (plan) {
      s = {
        ...s,
        releaseId: s.releaseId || plan.release_id,
        environments: s.environments.length ? s.environments : plan.environment ? [plan.environment] : [],
      };
    }
  }
  if (source === "change" && isUuid(s.changeRequestId) && !namesChangeEnvironments(type)) {
    const { rows } = await tx.query<{ environments: string[] }>(
      "SELECT environments FROM change_view WHERE change_request_id = $1::uuid",
      [s.changeRequestId],
    );
    s = { ...s, environments: [...new Set([...s.environments, ...(rows[0]?.environments ?? [])])] };
  }
  return s;
}

/** The audit rows of `events` (each with its subjects), in order, once per event id. */
async function insertAudit(
  source: string,
  events: { event: ProjectedEvent; subjects: EventSubjects }[],
  tx: pg.PoolClient,
) {
  const column = <T>(value: (e: (typeof events)[number]) => T) => events.map(value);
  const meta = ({ event }: (typeof events)[number]) => event.message.metadata;
  // Stream readers resume after the last seq they saw: seqs commit in order, one transaction at a time.
  // The NOTIFY goes with it: it is delivered at commit, after the rows (for nothing new, a
  // listener reads nothing). Both in the insert's own statement (serializedBy).
  // Named: parsed and planned once per connection, as every fetch writes its audit rows with it.
  await tx.query({
    name: "rdm_audit_insert",
    text: `WITH ${serializedBy("$16")}
     INSERT INTO audit_event (event_id, source, event_type, subject, stream_version, occurred_at, actor,
       correlation_id, causation_id, request_id, release_id, change_request_id, deployment_id, environments, views)
     SELECT a.event_id, $1, a.event_type, a.subject, a.stream_version, a.occurred_at, a.actor, a.correlation_id,
       a.causation_id, a.request_id, a.release_id, a.change_request_id, a.deployment_id,
       ${textArrayOfJson("a.environments")}, ${textArrayOfJson("a.views")}
     FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::text[], $8::text[],
       $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::jsonb[], $15::jsonb[]) WITH ORDINALITY
       AS a(event_id, event_type, subject, stream_version, occurred_at, actor, correlation_id, causation_id,
         request_id, release_id, change_request_id, deployment_id, environments, views, n), serialized
     ORDER BY a.n ON CONFLICT (event_id) DO NOTHING`,
    values: [
      source,
      column((e) => meta(e)?.eventId || e.event.envelope.id),
      column(({ event }) => event.message.$typeName),
      column(({ event }) => event.envelope.subject),
      column(({ event }) => event.version.toString()),
      column(({ event }) => event.occurredAt),
      column(({ event }) => event.actor),
      column((e) => meta(e)?.correlationId ?? ""),
      column((e) => meta(e)?.causationId ?? ""),
      column((e) => meta(e)?.requestId ?? ""),
      column(({ subjects }) => subjects.releaseId),
      column(({ subjects }) => subjects.changeRequestId),
      column(({ subjects }) => subjects.deploymentId),
      column(({ subjects }) => JSON.stringify(subjects.environments)),
      column(({ event }) => JSON.stringify(viewsOf(source, event.message.$typeName))),
      AUDIT_CHANNEL,
    ],
  });
}

/** Sources whose events name every subject themselves (completeSubjects reads nothing for them). */
const SELF_DESCRIBING = new Set(["release", "configuration"]);

/** An event with its subjects, completed from the views as they are now. */
const withSubjects = async (source: string, event: ProjectedEvent, tx: pg.PoolClient) => ({
  event,
  subjects: await completeSubjects(tx, source, event.message.$typeName, subjectsOf(event.message)),
});

const auditOf = (source: string, topic: string, handles: readonly DescMessage[]): Projection => ({
  name: "gateway.audit",
  topic,
  handles,
  migrations: auditMigrations,
  apply: async (event, tx) => insertAudit(source, [await withSubjects(source, event, tx)], tx),
  // Subjects completed from other views must be read event by event, between their updates; the
  // rows are still one statement per chunk.
  ...(SELF_DESCRIBING.has(source)
    ? {
        applyAll: (events, tx) =>
          insertAudit(
            source,
            events.map((event) => ({ event, subjects: subjectsOf(event.message) })),
            tx,
          ),
      }
    : {
        collected: collected(
          (event, tx) => withSubjects(source, event, tx),
          (items, tx) => insertAudit(source, items, tx),
        ),
      }),
});

/**
 * The audit trail of every topic: every event type each service's events file declares (a type
 * added there is recorded without code), once per event id. Listed after the services' own
 * projections, whose rows it reads to complete an event's subjects.
 */
export const auditProjections: Projection[] = [
  // The release service's topic also carries its notification subscriptions' events.
  auditOf("release", RELEASE_EVENTS_TOPIC, [
    ...file_rdm_release_v1_events.messages,
    ...file_rdm_notification_v1_events.messages,
  ]),
  auditOf("change", CHANGE_EVENTS_TOPIC, file_rdm_change_v1_events.messages),
  auditOf("configuration", CONFIGURATION_EVENTS_TOPIC, file_rdm_configuration_v1_events.messages),
  auditOf("deployment", DEPLOYMENT_EVENTS_TOPIC, file_rdm_deployment_v1_events.messages),
];
