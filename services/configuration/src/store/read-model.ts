import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { byteaArray, lastPerKey, unnestColumns } from "@rdm/eventstore";
import { instantOf } from "@rdm/proto";
import {
  type Artifact,
  ArtifactSchema,
  type ArtifactStatus,
  type Baseline,
  BaselineSchema,
  CiLifecycleStatus,
  type CiType,
  type ConfigurationItem,
  ConfigurationItemSchema,
  type Relationship,
  RelationshipSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type pg from "pg";

/** A pool or a client inside an open transaction. */
export type Queryable = Pick<pg.Pool, "query"> | pg.PoolClient;

/** An event's time (every stored event has one; the epoch otherwise, as a rebuild would write it). */
const at = (timestamp: { seconds: bigint; nanos: number } | undefined) => instantOf(timestamp as never, new Date(0));

/**
 * Many items in one statement (bulk import, a group-committed batch of commands); an id given
 * twice keeps its last item.
 */
export async function saveConfigurationItems(q: Queryable, items: ConfigurationItem[]): Promise<void> {
  const last = lastPerKey(items, (item) => item.ciId);
  if (last.length === 0) return;
  await q.query({
    // Named: every command on a CI runs it, so parsed and planned once a connection.
    name: "configuration_items_upsert",
    text: `INSERT INTO configuration_items (ci_id, name, type, owner, status, item, updated_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::bytea[], $7::timestamptz[])
           ON CONFLICT (ci_id) DO UPDATE SET name = excluded.name, type = excluded.type, owner = excluded.owner,
             status = excluded.status, item = excluded.item, updated_at = excluded.updated_at`,
    values: [
      last.map((i) => i.ciId),
      last.map((i) => i.name),
      last.map((i) => i.type),
      last.map((i) => i.owner),
      last.map((i) => i.status),
      byteaArray(last.map((i) => toBinary(ConfigurationItemSchema, i))),
      last.map((i) => at(i.updatedAt)),
    ],
  });
}

/** Relationships as unnest's columns $1-$3: source, type, target. */
const relationshipColumns = (relationships: Relationship[]) =>
  unnestColumns(
    relationships.map((r) => [r.sourceCiId, r.type, r.targetCiId]),
    3,
  );

/** Many removed relationships in one statement. */
export async function deleteRelationships(q: Queryable, relationships: Relationship[]): Promise<void> {
  if (relationships.length === 0) return;
  await q.query(
    `DELETE FROM ci_relationships r USING unnest($1::text[], $2::int[], $3::text[]) AS d (source, type, target)
     WHERE r.source_ci_id = d.source AND r.type = d.type AND r.target_ci_id = d.target`,
    relationshipColumns(relationships),
  );
}

/** Many added relationships in one statement (bulk import, a group-committed batch of commands). */
export async function saveRelationships(q: Queryable, relationships: Relationship[]): Promise<void> {
  if (relationships.length === 0) return;
  await q.query(
    `INSERT INTO ci_relationships (source_ci_id, type, target_ci_id)
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) ON CONFLICT DO NOTHING`,
    relationshipColumns(relationships),
  );
}

/** The request ids that registered the CIs named (the request id of each stream's first event). */
export async function registeringRequests(q: Queryable, ciIds: string[]): Promise<Set<string>> {
  if (ciIds.length === 0) return new Set();
  const { rows } = await q.query<{ request_id: string }>(
    `SELECT metadata->>'requestId' AS request_id FROM events
     WHERE stream_id = ANY($1) AND version = 1 AND type = 'rdm.configuration.v1.ConfigurationItemRegistered'`,
    [ciIds],
  );
  return new Set(rows.map((row) => row.request_id));
}

/** The CIs named that are retired now, their rows locked until the transaction ends (`q` must be one). */
export async function retiredAmong(q: Queryable, ciIds: string[]): Promise<string[]> {
  if (ciIds.length === 0) return [];
  await holdAsTargets(q, ciIds);
  const { rows } = await q.query<{ ci_id: string; status: number }>(
    "SELECT ci_id, status FROM configuration_items WHERE ci_id = ANY($1)",
    [ciIds],
  );
  return rows.filter((row) => row.status === CiLifecycleStatus.RETIRED).map((row) => row.ci_id);
}

export async function findConfigurationItems(q: Queryable, ciIds: string[]): Promise<Map<string, ConfigurationItem>> {
  const { rows } = await q.query<{ item: Buffer }>(`SELECT item FROM configuration_items WHERE ci_id = ANY($1)`, [
    ciIds,
  ]);
  return new Map(
    rows.map((row) => {
      const item = fromBinary(ConfigurationItemSchema, row.item);
      return [item.ciId, item];
    }),
  );
}

const TARGET_LOCK_BUCKETS = 128;

/**
 * Relationship targets and retires meet on transaction-scoped advisory locks, one per bucket of
 * CIs: writers adding relationships hold their targets' buckets shared (they never wait for each
 * other, so imports relating common CIs both ways cannot deadlock, as row share locks followed
 * by the sources' updates did), a retire holds its CI's bucket exclusive. A
 * retire thus waits for the relationships being added to its CI (or to another of its bucket), or
 * commits first and is seen: a retired item never gains one. Buckets, not CIs: PostgreSQL's lock
 * table holds about 6,400 locks in all, and an import message may name 1,000 targets. `q` must be
 * a transaction.
 */
export async function holdAsTargets(q: Queryable, ciIds: string[]): Promise<void> {
  await q.query(
    `SELECT pg_advisory_xact_lock_shared(hashtext('configuration.ci-targets'), bucket)
     FROM (SELECT DISTINCT hashtext(id) & ${TARGET_LOCK_BUCKETS - 1} AS bucket FROM unnest($1::text[]) AS id) AS b`,
    [ciIds],
  );
}

/** See holdAsTargets. */
export async function holdForRetire(q: Queryable, ciId: string): Promise<void> {
  await q.query(
    `SELECT pg_advisory_xact_lock(hashtext('configuration.ci-targets'), hashtext($1::text) & ${TARGET_LOCK_BUCKETS - 1})`,
    [ciId],
  );
}

/** `asTarget`: hold it as a relationship's target until the transaction ends (see holdAsTargets). */
export async function findConfigurationItem(
  q: Queryable,
  ciId: string,
  options: { asTarget?: boolean } = {},
): Promise<ConfigurationItem | undefined> {
  if (options.asTarget) await holdAsTargets(q, [ciId]);
  const { rows } = await q.query<{ item: Buffer }>("SELECT item FROM configuration_items WHERE ci_id = $1", [ciId]);
  return rows[0] ? fromBinary(ConfigurationItemSchema, rows[0].item) : undefined;
}

export interface ConfigurationItemFilter {
  type: CiType;
  owner: string;
  status: CiLifecycleStatus;
  nameContains: string;
  pageSize: number;
  /** Keyset cursor: the last (lower(name), ci_id) of the previous page. */
  after: [string, string] | undefined;
}

export async function listConfigurationItems(
  q: Queryable,
  filter: ConfigurationItemFilter,
): Promise<{ items: ConfigurationItem[]; next: [string, string] | undefined }> {
  const conditions: string[] = [];
  const values: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    conditions.push(sql.replace("?", `$${values.length}`));
  };
  if (filter.type) add("type = ?", filter.type);
  if (filter.owner) add("owner = ?", filter.owner);
  if (filter.status) add("status = ?", filter.status);
  // Case is folded by PostgreSQL's lower() only: JavaScript's toLowerCase differs (İ, final Σ).
  if (filter.nameContains) add("strpos(lower(name), lower(?)) > 0", filter.nameContains);
  if (filter.after) {
    values.push(filter.after[0], filter.after[1]);
    conditions.push(`(lower(name), ci_id) > ($${values.length - 1}, $${values.length})`);
  }
  values.push(filter.pageSize + 1);
  const { rows } = await q.query<{ item: Buffer; sort_name: string; ci_id: string }>(
    `SELECT item, lower(name) AS sort_name, ci_id FROM configuration_items
     ${conditions.length ? `WHERE ${conditions.join(" AND ")}` : ""}
     ORDER BY lower(name), ci_id LIMIT $${values.length}`,
    values,
  );
  const page = rows.slice(0, filter.pageSize);
  const last = page.at(-1);
  return {
    items: page.map((row) => fromBinary(ConfigurationItemSchema, row.item)),
    // The sort key as PostgreSQL computed it, so the next page starts exactly after this one.
    next: rows.length > filter.pageSize && last ? [last.sort_name, last.ci_id] : undefined,
  };
}

export async function relationshipsOf(
  q: Queryable,
  ciId: string,
): Promise<{ outgoing: Relationship[]; incoming: Relationship[] }> {
  const { rows } = await q.query<{ source_ci_id: string; type: number; target_ci_id: string }>(
    `SELECT source_ci_id, type, target_ci_id FROM ci_relationships WHERE source_ci_id = $1
     UNION ALL
     SELECT source_ci_id, type, target_ci_id FROM ci_relationships WHERE target_ci_id = $1
     ORDER BY 1, 2, 3`,
    [ciId],
  );
  const relationships = rows.map((r) =>
    create(RelationshipSchema, { sourceCiId: r.source_ci_id, type: r.type, targetCiId: r.target_ci_id }),
  );
  return {
    outgoing: relationships.filter((r) => r.sourceCiId === ciId),
    incoming: relationships.filter((r) => r.targetCiId === ciId),
  };
}

export async function saveArtifact(q: Queryable, artifact: Artifact): Promise<void> {
  await q.query(
    `INSERT INTO dml_artifacts (artifact_id, name, version, status, artifact, registered_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (artifact_id) DO UPDATE SET status = $4, artifact = $5`,
    [
      artifact.artifactId,
      artifact.name,
      artifact.version,
      artifact.status,
      Buffer.from(toBinary(ArtifactSchema, artifact)),
      at(artifact.registeredAt),
    ],
  );
}

export async function artifactIdByNameVersion(
  q: Queryable,
  name: string,
  version: string,
): Promise<string | undefined> {
  const { rows } = await q.query<{ artifact_id: string }>(
    `SELECT artifact_id FROM dml_artifacts WHERE name = $1 AND version = $2`,
    [name, version],
  );
  return rows[0]?.artifact_id;
}

export async function findArtifacts(q: Queryable, artifactIds: string[]): Promise<Artifact[]> {
  const { rows } = await q.query<{ artifact: Buffer }>(
    `SELECT artifact FROM dml_artifacts WHERE artifact_id = ANY($1)`,
    [artifactIds],
  );
  return rows.map((row) => fromBinary(ArtifactSchema, row.artifact));
}

export async function listArtifacts(
  q: Queryable,
  filter: { name: string; status: ArtifactStatus; pageSize: number; after: [string, string] | undefined },
): Promise<{ artifacts: Artifact[]; next: [string, string] | undefined }> {
  const conditions: string[] = [];
  const values: unknown[] = [];
  if (filter.name) {
    values.push(filter.name);
    conditions.push(`name = $${values.length}`);
  }
  if (filter.status) {
    values.push(filter.status);
    conditions.push(`status = $${values.length}`);
  }
  if (filter.after) {
    values.push(filter.after[0], filter.after[1]);
    conditions.push(`(registered_at, artifact_id) < ($${values.length - 1}::timestamptz, $${values.length})`);
  }
  values.push(filter.pageSize + 1);
  const { rows } = await q.query<{ artifact: Buffer; registered_at: Date; artifact_id: string }>(
    `SELECT artifact, registered_at, artifact_id FROM dml_artifacts
     ${conditions.length ? `WHERE ${conditions.join(" AND ")}` : ""}
     ORDER BY registered_at DESC, artifact_id DESC LIMIT $${values.length}`,
    values,
  );
  const page = rows.slice(0, filter.pageSize);
  const last = page.at(-1);
  return {
    artifacts: page.map((row) => fromBinary(ArtifactSchema, row.artifact)),
    next: rows.length > filter.pageSize && last ? [last.registered_at.toISOString(), last.artifact_id] : undefined,
  };
}

export async function saveBaseline(q: Queryable, baseline: Baseline): Promise<void> {
  await q.query(
    `INSERT INTO baselines (environment, baseline, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (environment) DO UPDATE SET baseline = $2, updated_at = $3`,
    [baseline.environment, Buffer.from(toBinary(BaselineSchema, baseline)), at(baseline.updatedAt)],
  );
}

export async function findBaseline(q: Queryable, environment: string): Promise<Baseline | undefined> {
  const { rows } = await q.query<{ baseline: Buffer }>(`SELECT baseline FROM baselines WHERE environment = $1`, [
    environment,
  ]);
  return rows[0] ? fromBinary(BaselineSchema, rows[0].baseline) : undefined;
}
