import { createRegistry, type DescEnum, fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { CloudEvent } from "@rdm/messaging";
import { PermanentError } from "@rdm/messaging";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhaseSchema, ReleaseTypeSchema, RiskLevelSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";

export const RELEASE_EVENTS_TOPIC = "rdm.release.events.v1";

export const releaseProjectionMigrations = [
  {
    version: 1,
    name: "release projection",
    sql: `
      CREATE TABLE release_view (
        release_id    uuid PRIMARY KEY,
        key           text NOT NULL UNIQUE,
        title         text NOT NULL,
        description   text NOT NULL,
        type          text NOT NULL,
        category      text NOT NULL,
        owner         text NOT NULL,
        coordinator   text NOT NULL,
        stakeholders  jsonb NOT NULL,
        risk          text NOT NULL,
        planned_start timestamptz,
        planned_end   timestamptz,
        phase         text NOT NULL,
        registered_by text NOT NULL,
        registered_at timestamptz NOT NULL,
        version       bigint NOT NULL,
        updated_at    timestamptz NOT NULL
      );
      CREATE INDEX release_view_page ON release_view (registered_at DESC, release_id DESC);`,
  },
];

const registry = createRegistry(ReleaseRegisteredSchema);

/** Enum value -> its name without the type prefix (RELEASE_TYPE_MAJOR -> MAJOR). */
export function enumName(schema: DescEnum, value: number): string {
  return schema.values.find((v) => v.number === value)?.localName ?? "UNSPECIFIED";
}

/**
 * Applies one release event to the view inside the consumer's transaction. Event types this
 * gateway does not know yet are skipped (forward compatible); bytes that do not decode are
 * a permanent failure and go to the dead-letter topic.
 */
export async function projectReleaseEvent(event: CloudEvent, tx: pg.PoolClient): Promise<void> {
  const schema = registry.getMessage(event.type);
  if (!schema) return;
  let message: ReturnType<typeof fromBinary<typeof ReleaseRegisteredSchema>>;
  try {
    message = fromBinary(schema, event.data) as typeof message;
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  switch (message.$typeName) {
    case "rdm.release.v1.ReleaseRegistered": {
      const m = message;
      const window = m.plannedWindow;
      await tx.query(
        `INSERT INTO release_view (release_id, key, title, description, type, category, owner, coordinator,
           stakeholders, risk, planned_start, planned_end, phase, registered_by, registered_at, version, updated_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$15)
         ON CONFLICT (release_id) DO NOTHING`,
        [
          m.releaseId,
          m.key,
          m.title,
          m.description,
          enumName(ReleaseTypeSchema, m.type),
          m.category,
          m.owner,
          m.coordinator,
          JSON.stringify(m.stakeholders),
          enumName(RiskLevelSchema, m.risk),
          window?.start ? timestampDate(window.start) : null,
          window?.end ? timestampDate(window.end) : null,
          enumName(ReleasePhaseSchema, m.phase),
          m.metadata?.actor ?? "",
          m.metadata?.occurredAt ? timestampDate(m.metadata.occurredAt) : event.time,
          (m.metadata?.streamVersion ?? 1n).toString(),
        ],
      );
      return;
    }
  }
}
