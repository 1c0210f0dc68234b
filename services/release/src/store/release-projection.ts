import { toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Projected } from "@rdm/command-handler";
import type { Projection } from "@rdm/eventstore";
import { ReleaseSchema, ReleaseStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import { durationMs } from "../domain/models.js";
import type { ReleaseEvent, ReleaseState } from "../domain/release.js";
import { recordTaskDeadlines, taskOverdueCount } from "./notification-tables.js";

type Item = Projected<ReleaseState, ReleaseEvent>;

/**
 * What appended release events imply for the service's tables (index, deadlines, task
 * deadlines, deliveries),
 * written in the append's transaction: for a batch of commands, one statement per table.
 */
export const releaseProjection: Projection<Item> = {
  async apply(tx, items) {
    // The last outcome of a release is its newest state.
    const latest = new Map(items.flatMap((i) => (i.outcome.after.release ? [[i.outcome.streamId, i] as const] : [])));
    if (latest.size === 0) return;
    await saveIndex(tx, [...latest.values()]);
    await saveDeadlines(tx, deadlinesOf(items));
    await saveDeliveries(tx, deliveriesOf(items));
    await recordTaskDeadlines(
      tx,
      [...latest.values()].map((i) => i.outcome.after.release as NonNullable<ReleaseState["release"]>),
    );
  },
};

async function saveIndex(tx: pg.PoolClient, items: Item[]): Promise<void> {
  const rows = items.map(({ outcome, ctx }) => {
    const release = outcome.after.release as NonNullable<ReleaseState["release"]>;
    return [
      release.releaseId,
      release.key,
      release.title,
      release.type,
      release.phase,
      release.status,
      release.owner,
      (release.registeredAt ? timestampDate(release.registeredAt) : ctx.now).toISOString(),
      release.phaseDueAt && release.status === ReleaseStatus.ACTIVE
        ? timestampDate(release.phaseDueAt).toISOString()
        : null,
      Buffer.from(toBinary(ReleaseSchema, release)),
      taskOverdueCount(release),
    ] as const;
  });
  const column = (i: number) => rows.map((r) => r[i]);
  await tx.query({
    name: "release_index_upsert",
    text: `INSERT INTO release_index (release_id, key, title, type, phase, status, owner, registered_at, phase_due_at, snapshot,
                               overdue_tasks)
      SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::text[],
                           $8::timestamptz[], $9::timestamptz[], $10::bytea[], $11::int[])
      ON CONFLICT (release_id) DO UPDATE SET title = excluded.title, phase = excluded.phase, status = excluded.status,
        phase_due_at = excluded.phase_due_at, snapshot = excluded.snapshot, overdue_tasks = excluded.overdue_tasks`,
    values: Array.from({ length: 11 }, (_, i) => column(i)),
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
        dueAt: timestampDate(release.phaseDueAt),
      });
    for (const event of events) {
      if (event.$typeName === "rdm.release.v1.ReleaseDeadlineMissed" && event.dueAt)
        deadlines.push({
          releaseId: release.releaseId,
          phaseEntry: event.phaseEntry,
          kind: "escalation",
          dueAt: new Date(timestampDate(event.dueAt).getTime() + durationMs(model?.escalationGrace)),
        });
    }
    return deadlines;
  });
}

async function saveDeadlines(tx: pg.PoolClient, deadlines: Deadline[]): Promise<void> {
  if (deadlines.length === 0) return;
  await tx.query({
    name: "release_deadlines_insert",
    text: `INSERT INTO release_deadlines (release_id, phase_entry, kind, due_at)
      SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[]) ON CONFLICT DO NOTHING`,
    values: [
      deadlines.map((d) => d.releaseId),
      deadlines.map((d) => d.phaseEntry),
      deadlines.map((d) => d.kind),
      deadlines.map((d) => d.dueAt.toISOString()),
    ],
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
                  ? timestampDate(event.metadata.occurredAt).toISOString()
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

async function saveDeliveries(tx: pg.PoolClient, deliveries: Delivery[]): Promise<void> {
  if (deliveries.length === 0) return;
  const column = (i: number) => deliveries.map((d) => d[i]);
  await tx.query({
    name: "notification_deliveries_insert",
    text: `INSERT INTO notification_deliveries (notification_id, release_id, trigger, recipients, payload, next_attempt_at)
      SELECT n, r, t, rc::jsonb, p::jsonb, a
      FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS d (n, r, t, rc, p, a)
      ON CONFLICT DO NOTHING`,
    values: Array.from({ length: 6 }, (_, i) => column(i)),
  });
}
