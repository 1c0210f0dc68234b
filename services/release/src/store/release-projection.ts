import { toBinary } from "@bufbuild/protobuf";
import type { Projected } from "@rdm/command-handler";
import { lastPerKey, type Projection, unnestColumns } from "@rdm/eventstore";
import { instantOf } from "@rdm/proto";
import { SubscriptionStatus } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { type Release, ReleaseSchema, ReleaseStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import { durationMs } from "../domain/models.js";
import type { ReleaseEvent, ReleaseState } from "../domain/release.js";
import { taskDeadlineRows, taskOverdueCount } from "./notification-tables.js";
import { DEFAULT_SUBSCRIPTION_ID } from "./subscriptions.js";

type Item = Projected<ReleaseState, ReleaseEvent>;

/**
 * A release's bytes, encoded once per state: a command's size check, its index row and its answer
 * on the wire take the same state after its events, and a release may hold up to 1 MiB. The answer
 * takes them out (takeEncodedRelease): the command handler keeps that state for the stream's next
 * command, and the bytes would stay with it.
 */
const encoded = new WeakMap<Release, Uint8Array>();
export function encodedRelease(release: Release): Uint8Array {
  let bytes = encoded.get(release);
  if (!bytes) {
    bytes = toBinary(ReleaseSchema, release);
    encoded.set(release, bytes);
  }
  return bytes;
}

/** The bytes encodedRelease made of this release, if any, no longer kept. */
export function takeEncodedRelease(release: Release): Uint8Array | undefined {
  const bytes = encoded.get(release);
  encoded.delete(release);
  return bytes;
}

function indexedBytes(release: Release): Buffer {
  const bytes = encodedRelease(release);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * What appended release events imply for the service's tables (index, deadlines, deliveries,
 * task deadlines), written in the append's transaction: one statement for a batch of commands.
 */
export const releaseProjection: Projection<Item> = {
  async apply(tx, items) {
    // The last outcome of a release is its newest state.
    const latest = lastPerKey(
      items.filter((i) => i.outcome.after.release),
      (i) => i.outcome.streamId,
    );
    if (latest.length === 0) return;
    const releases = latest.map((i) => i.outcome.after.release as NonNullable<ReleaseState["release"]>);
    const [index, deadlines, deliveries, tasks] = [
      releases.map(releaseIndexRow),
      deadlinesOf(items),
      deliveriesOf(items),
      taskDeadlineRows(releases),
    ];
    // One statement for the four tables (each CTE inserts its rows, none reads another's).
    await tx.query({
      name: "release_projection",
      text: `WITH
        release_index_rows AS (${UPSERT_RELEASE_INDEX}),
        deadline_rows AS (
          INSERT INTO release_deadlines (release_id, phase_entry, kind, due_at)
          SELECT * FROM unnest($12::uuid[], $13::int[], $14::text[], $15::timestamptz[]) ON CONFLICT DO NOTHING),
        delivery_rows AS (
          INSERT INTO notification_deliveries (notification_id, release_id, trigger, recipients, payload, next_attempt_at,
                                               status)
          SELECT n, r, t, rc::jsonb, p::jsonb, a,
            -- Not sent later when no webhook is configured now (its subscription is not active).
            CASE WHEN EXISTS (SELECT 1 FROM notification_subscriptions WHERE subscription_id = $25 AND status = $26)
              THEN 'PENDING' ELSE 'SKIPPED' END
          FROM unnest($16::uuid[], $17::uuid[], $18::text[], $19::text[], $20::text[], $21::timestamptz[])
            AS d (n, r, t, rc, p, a)
          ON CONFLICT DO NOTHING)
      INSERT INTO release_task_deadlines (release_id, task_id, due_at)
      SELECT * FROM unnest($22::uuid[], $23::text[], $24::timestamptz[]) ON CONFLICT DO NOTHING`,
      values: [
        ...unnestColumns(index, 11),
        ...unnestColumns(
          deadlines.map((d) => [d.releaseId, d.phaseEntry, d.kind, d.dueAt.toISOString()]),
          4,
        ),
        ...unnestColumns(deliveries, 6),
        ...unnestColumns(tasks, 3),
        DEFAULT_SUBSCRIPTION_ID,
        SubscriptionStatus.ACTIVE,
      ],
    });
  },
};

/**
 * Upserts release_index rows given as columns $1-$11 (releaseIndexRow's). Key, type, owner and
 * registration time never change once registered.
 */
const UPSERT_RELEASE_INDEX = `
  INSERT INTO release_index (release_id, key, title, type, phase, status, owner, registered_at, phase_due_at,
                             snapshot, overdue_tasks)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::text[],
                       $8::timestamptz[], $9::timestamptz[], $10::bytea[], $11::int[])
  ON CONFLICT (release_id) DO UPDATE SET title = excluded.title, phase = excluded.phase,
    status = excluded.status, phase_due_at = excluded.phase_due_at, snapshot = excluded.snapshot,
    overdue_tasks = excluded.overdue_tasks`;

/**
 * A release's index row, from its state alone, so that rebuilding it from the events writes it
 * again the same. Its registration time is its registration event's (every appended event carries
 * one); the epoch stands in only for an event appended without it.
 */
function releaseIndexRow(release: Release) {
  return [
    release.releaseId,
    release.key,
    release.title,
    release.type,
    release.phase,
    release.status,
    release.owner,
    instantOf(release.registeredAt, new Date(0)).toISOString(),
    release.phaseDueAt && release.status === ReleaseStatus.ACTIVE ? instantOf(release.phaseDueAt).toISOString() : null,
    indexedBytes(release),
    taskOverdueCount(release),
  ] as const;
}

/** Writes the releases' index rows alone (a rebuild from the events; commands write them in releaseProjection). */
export async function saveReleaseIndex(db: Pick<pg.PoolClient, "query">, releases: Release[]): Promise<void> {
  await db.query({
    name: "release_index",
    text: UPSERT_RELEASE_INDEX,
    values: unnestColumns(releases.map(releaseIndexRow), 11),
  });
}

interface Deadline {
  releaseId: string;
  phaseEntry: number;
  kind: "missed" | "escalation";
  dueAt: Date;
}

function deadlinesOf(items: Item[]): Deadline[] {
  return items.flatMap(({ outcome: { after, events } }) => {
    const { release, model } = after;
    if (!release) return [];
    const deadlines: Deadline[] = [];
    if (release.status === ReleaseStatus.ACTIVE && release.phaseDueAt)
      deadlines.push({
        releaseId: release.releaseId,
        phaseEntry: release.phaseEntry,
        kind: "missed",
        dueAt: instantOf(release.phaseDueAt),
      });
    for (const event of events) {
      if (event.$typeName === "rdm.release.v1.ReleaseDeadlineMissed" && event.dueAt)
        deadlines.push({
          releaseId: release.releaseId,
          phaseEntry: event.phaseEntry,
          kind: "escalation",
          dueAt: new Date(instantOf(event.dueAt).getTime() + durationMs(model?.escalationGrace)),
        });
    }
    return deadlines;
  });
}

type Delivery = [
  notificationId: string,
  releaseId: string,
  trigger: string,
  recipients: string,
  payload: string,
  nextAttemptAt: string,
];

function deliveriesOf(items: Item[]): Delivery[] {
  return items.flatMap(({ outcome: { after, events }, ctx }) => {
    const { release } = after;
    if (!release) return [];
    return events.flatMap((event): Delivery[] =>
      event.$typeName === "rdm.release.v1.ReleaseNotificationRequested"
        ? [
            [
              event.notificationId,
              release.releaseId,
              event.trigger,
              JSON.stringify(event.recipients),
              JSON.stringify({
                notificationId: event.notificationId,
                releaseId: release.releaseId,
                releaseKey: release.key,
                trigger: event.trigger,
                subject: event.subject,
                recipients: event.recipients,
                phase: event.phase,
                occurredAt: event.metadata?.occurredAt
                  ? instantOf(event.metadata.occurredAt).toISOString()
                  : ctx.now.toISOString(),
                actor: event.metadata?.actor ?? "",
              }),
              ctx.now.toISOString(),
            ],
          ]
        : [],
    );
  });
}
