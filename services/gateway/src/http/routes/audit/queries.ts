import type pg from "pg";
import type { StreamEntry } from "../../sse.js";
import { KNOWN_ENVIRONMENTS } from "../deployments/queries.js";

export interface AuditRow {
  seq: string;
  event_id: string;
  source: string;
  event_type: string;
  subject: string;
  stream_version: string;
  occurred_at: Date;
  actor: string;
  correlation_id: string;
  causation_id: string;
  request_id: string;
  release_id: string;
  change_request_id: string;
  deployment_id: string;
  environments: string[];
  views: string[];
}

export const toAuditEntry = (r: AuditRow) => ({
  seq: Number(r.seq),
  eventId: r.event_id,
  source: r.source,
  eventType: r.event_type,
  subject: r.subject,
  streamVersion: Number(r.stream_version),
  occurredAt: r.occurred_at,
  actor: r.actor,
  correlationId: r.correlation_id,
  causationId: r.causation_id,
  requestId: r.request_id,
  releaseId: r.release_id,
  changeRequestId: r.change_request_id,
  deploymentId: r.deployment_id,
  environments: r.environments,
  views: r.views,
});

export interface AuditFilters {
  actor?: string;
  release?: string;
  change?: string;
  environment?: string;
  correlation?: string;
  from?: Date;
  to?: Date;
  /** One of the combined views (the view stream's filter). */
  view?: string;
  /**
   * The view stream's: configuration events count as the release's when about its package (an
   * artifact, or the CI it maps to), and as the environment's when about one of its targets, as
   * they change its overview and inventory.
   */
  related?: boolean;
}

/** The configuration streams (bare artifact and CI ids) a release's package names. */
const PACKAGE_SUBJECTS = (release: string) =>
  `SELECT p->>k FROM release_view r, jsonb_array_elements(r.snapshot->'package') p,
     unnest(ARRAY['artifactId', 'configurationItemId']) k WHERE r.release_id::text = lower(${release})`;

/** The CIs an environment's definition targets. */
const ENVIRONMENT_TARGETS = (environment: string) =>
  `SELECT ci FROM environment_definition_view e, jsonb_array_elements(e.definition->'targetGroups') g,
     jsonb_array_elements_text(g->'ciIds') ci WHERE e.environment = ${environment}::text`;

/** Audit entries after `after` in projection order that pass the filters, at most `limit`. */
export async function auditAfter(pool: pg.Pool, after: number, limit: number, f: AuditFilters) {
  const args: unknown[] = [after, limit];
  const where = ["seq > $1"];
  const add = (sql: (param: string) => string, value: unknown) => {
    if (value === undefined) return;
    args.push(value);
    where.push(sql(`$${args.length}`));
  };
  add((p) => `actor = ${p}`, f.actor);
  // Ids are stored as the services write them, lower case; a client may send a UUID in either case.
  const related = (sql: string, subjects: string) =>
    f.related ? `(${sql} OR (source = 'configuration' AND subject IN (${subjects})))` : sql;
  add((p) => related(`release_id = lower(${p})`, PACKAGE_SUBJECTS(p)), f.release);
  add((p) => `change_request_id = lower(${p})`, f.change);
  // A change naming no environment is production's (as the change and deployment services have
  // it): its events are under every environment the gateway knows (defined or deployed to) that
  // is production now, as the environment listing says.
  add(
    (p) =>
      related(
        `(${p}::text = ANY(environments) OR (source = 'change' AND change_request_id <> '' AND environments = '{}'
      AND (SELECT k.production FROM (${KNOWN_ENVIRONMENTS}) k WHERE k.name = ${p}::text)))`,
        ENVIRONMENT_TARGETS(p),
      ),
    f.environment,
  );
  add((p) => `correlation_id = ${p}`, f.correlation);
  add((p) => `occurred_at >= ${p}`, f.from);
  add((p) => `occurred_at < ${p}`, f.to);
  add((p) => `${p}::text = ANY(views)`, f.view);
  const { rows } = await pool.query<AuditRow>(
    `SELECT * FROM audit_event WHERE ${where.join(" AND ")} ORDER BY seq LIMIT $2`,
    args,
  );
  return rows.map(toAuditEntry);
}

/** The newest seq of the audit trail (0: empty): where a stream without a resume point starts. */
export async function newestAuditSeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ max: string | null }>("SELECT max(seq) AS max FROM audit_event");
  return Number(rows[0]?.max ?? 0);
}

export const asStreamEntries = (
  entries: ReturnType<typeof toAuditEntry>[],
  event: (e: (typeof entries)[number]) => string,
): StreamEntry[] => entries.map((entry) => ({ seq: entry.seq, event: event(entry), data: entry }));
