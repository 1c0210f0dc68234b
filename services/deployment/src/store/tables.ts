import { fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { lastPerKey, textArrayOfJson, unnestColumns } from "@rdm/eventstore";
import { instantOf } from "@rdm/proto";
import { type Deployment, DeploymentSchema, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeployedArtifactSchema,
  type Environment,
  EnvironmentSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import { narrowedTo } from "../domain/baseline.js";
import { allTargets } from "../domain/environment.js";

export type Queryable = Pick<pg.PoolClient, "query">;

export async function saveEnvironment(tx: Queryable, environment: Environment) {
  await tx.query(
    `INSERT INTO environments (name, promotion_rank, environment) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET promotion_rank = EXCLUDED.promotion_rank, environment = EXCLUDED.environment`,
    [environment.name, environment.promotionRank, toBinary(EnvironmentSchema, environment)],
  );
  // Its outcome row from the registration on, so one rebuilt from the streams has the same rows.
  await tx.query("INSERT INTO environment_outcomes (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [
    environment.name,
  ]);
}

/**
 * An environment command's write: the definition, and its steps waiting or under way relabelled,
 * so executors with its labels as they are now claim them. Their rows are locked before its own:
 * a command holding one of them read the labels before (executorLabelsOf) and commits first; one
 * queuing a step meanwhile waits for this row, then reads the new labels.
 */
export async function saveEnvironmentAndQueue(tx: Queryable, environment: Environment) {
  await tx.query(
    `SELECT 1 FROM step_queue WHERE environment = $1 AND status IN ('READY', 'CLAIMED')
     ORDER BY deployment_id, step_index FOR UPDATE`,
    [environment.name],
  );
  await saveEnvironment(tx, environment);
  await tx.query(
    `UPDATE step_queue SET required_labels = $2
     WHERE environment = $1 AND status IN ('READY', 'CLAIMED') AND required_labels <> $2::text[]`,
    [environment.name, environment.executorLabels],
  );
}

export const artifactsFromJson = (json: JsonValue[]) => json.map((item) => fromJson(DeployedArtifactSchema, item));
export const artifactsToJson = (artifacts: DeployedArtifact[]) =>
  JSON.stringify(artifacts.map((artifact) => toJson(DeployedArtifactSchema, artifact)));

interface EnvironmentRow {
  environment: Uint8Array;
  baseline: JsonValue[] | null;
  baseline_deployment_id: string | null;
  baseline_since: Date | null;
  live_colour: string | null;
}

/**
 * The environment's definition with what runs there: on the targets it has (one taken out since
 * its last outcome is no part of it, nor of a back-out), its colour and since when.
 */
const withOutcome = (row: EnvironmentRow): Environment => {
  const environment = fromBinary(EnvironmentSchema, row.environment);
  environment.baseline = narrowedTo(artifactsFromJson(row.baseline ?? []), allTargets(environment));
  environment.baselineDeploymentId = row.baseline_deployment_id ?? "";
  if (row.baseline_since) environment.baselineSince = timestampFromDate(row.baseline_since);
  environment.liveColour = row.live_colour ?? "";
  return environment;
};

const ENVIRONMENT_COLUMNS = "e.environment, o.baseline, o.baseline_deployment_id, o.baseline_since, o.live_colour";
const ENVIRONMENTS = "environments e LEFT JOIN environment_outcomes o ON o.name = e.name";

/** Where a page of environments starts: after this rank and name (the promotion order's keyset). */
export interface EnvironmentKey {
  rank: number;
  name: string;
}

/**
 * Environments in promotion order (rank, then name) with what runs there: every one, or at most
 * `limit` of those after `after`; each with about how many bytes it takes (definition and baseline).
 */
export async function listEnvironments(
  db: Queryable,
  page: { after?: EnvironmentKey; limit?: number } = {},
): Promise<{ environment: Environment; bytes: number }[]> {
  const { rows } = await db.query<EnvironmentRow & { bytes: number }>(
    `SELECT ${ENVIRONMENT_COLUMNS}, octet_length(e.environment) + coalesce(octet_length(o.baseline::text), 0) AS bytes
     FROM ${ENVIRONMENTS} WHERE $1::int IS NULL OR (e.promotion_rank, e.name) > ($1, $2)
     ORDER BY e.promotion_rank, e.name LIMIT $3`,
    [page.after?.rank ?? null, page.after?.name ?? null, page.limit ?? null],
  );
  return rows.map((row) => ({ environment: withOutcome(row), bytes: row.bytes }));
}

export async function findEnvironment(db: Queryable, name: string): Promise<Environment | undefined> {
  const { rows } = await db.query<EnvironmentRow>(
    `SELECT ${ENVIRONMENT_COLUMNS} FROM ${ENVIRONMENTS} WHERE e.name = $1`,
    [name],
  );
  return rows[0] && withOutcome(rows[0]);
}

/**
 * The environment's executor labels for the steps a command queues, its row share-locked until
 * the command commits: a ChangeEnvironment meanwhile (saveEnvironmentAndQueue) waits, then
 * relabels them.
 */
export async function executorLabelsOf(tx: Queryable, name: string): Promise<string[]> {
  const { rows } = await tx.query<{ environment: Uint8Array }>(
    "SELECT environment FROM environments WHERE name = $1 FOR SHARE",
    [name],
  );
  return rows[0] ? fromBinary(EnvironmentSchema, rows[0].environment).executorLabels : [];
}

/** `from` and the environments before it in the promotion order, nearest first (stops at a repeat). */
export async function promotionChain(db: Queryable, from: string): Promise<string[]> {
  const chain: string[] = [];
  for (let name = from; name && !chain.includes(name); ) {
    const environment = await findEnvironment(db, name);
    if (!environment) break;
    chain.push(name);
    name = environment.promotesFrom;
  }
  return chain;
}

/**
 * The targets among `ciIds` that environments other than `name` have (ids compared without case,
 * as the same CMDB UUID), each with one such environment.
 */
export async function targetsElsewhere(
  db: Queryable,
  name: string,
  ciIds: string[],
): Promise<{ ciId: string; environment: string }[]> {
  const { rows } = await db.query<{ environment: Uint8Array }>(
    "SELECT environment FROM environments WHERE name <> $1",
    [name],
  );
  const owners = new Map<string, string>();
  for (const row of rows) {
    const other = fromBinary(EnvironmentSchema, row.environment);
    for (const ci of allTargets(other)) owners.set(ci.toLowerCase(), other.name);
  }
  return [...new Set(ciIds)].flatMap((ciId) => {
    const environment = owners.get(ciId.toLowerCase());
    return environment ? [{ ciId, environment }] : [];
  });
}

/** Where production stands now: whether an environment is, and which defined ones are (sorted). */
export interface ProductionEnvironments {
  isProduction(environment: string): boolean;
  readonly names: string[];
}

/**
 * Production: as the environment's definition says or, when it does not say, the end of the
 * promotion order, an environment no other one promotes from.
 */
export async function productionEnvironments(db: Queryable): Promise<ProductionEnvironments> {
  // The definitions only: baselines can hold thousands of artifact-target pairs each.
  const { rows } = await db.query<{ environment: Uint8Array }>("SELECT environment FROM environments");
  const definitions = rows.map((row) => fromBinary(EnvironmentSchema, row.environment));
  const isProduction = (environment: string) =>
    definitions.find((definition) => definition.name === environment)?.production ??
    !definitions.some((definition) => definition.promotesFrom === environment);
  const names = definitions.map((definition) => definition.name).filter(isProduction);
  return { isProduction, names: names.sort() };
}

export const isProduction = async (db: Queryable, environment: string) =>
  (await productionEnvironments(db)).isProduction(environment);

/** Locks the environment's outcome row until the transaction ends (creating it at sequence 0). */
export async function lockEnvironmentOutcomes(tx: Queryable, environment: string): Promise<void> {
  await tx.query(
    `INSERT INTO environment_outcomes (name, last_sequence) VALUES ($1, 0)
     ON CONFLICT (name) DO UPDATE SET last_sequence = environment_outcomes.last_sequence`,
    [environment],
  );
}

/**
 * What the outcomes so far left in the environment, as stored (also on targets taken out since):
 * what the next outcome applies to, the same live and on a rebuild.
 */
export async function storedBaseline(tx: Queryable, environment: string): Promise<DeployedArtifact[]> {
  const { rows } = await tx.query<{ baseline: JsonValue[] }>(
    "SELECT baseline FROM environment_outcomes WHERE name = $1",
    [environment],
  );
  return artifactsFromJson(rows[0]?.baseline ?? []);
}

/** Hands out the environment's next outcome sequence; the row lock holds until the append commits. */
export async function nextEnvironmentSequence(tx: Queryable, environment: string): Promise<bigint> {
  const { rows } = await tx.query<{ last_sequence: string }>(
    `INSERT INTO environment_outcomes (name, last_sequence) VALUES ($1, 1)
     ON CONFLICT (name) DO UPDATE SET last_sequence = environment_outcomes.last_sequence + 1
     RETURNING last_sequence`,
    [environment],
  );
  return BigInt(rows[0]?.last_sequence ?? "0");
}

/** The environments' last sequences handed out, raised to `sequences` (a rebuild: the highest its outcome events carry). */
export async function restoreEnvironmentSequences(tx: Queryable, sequences: ReadonlyMap<string, bigint>) {
  if (sequences.size === 0) return;
  await tx.query(
    `INSERT INTO environment_outcomes (name, last_sequence) SELECT * FROM unnest($1::text[], $2::bigint[])
     ON CONFLICT (name) DO UPDATE
       SET last_sequence = GREATEST(environment_outcomes.last_sequence, EXCLUDED.last_sequence)`,
    [[...sequences.keys()], [...sequences.values()].map(String)],
  );
}

/** What a succeeded or rolled-back deployment leaves running in its environment. */
export interface Baseline {
  /** The outcome's environment sequence. */
  sequence: bigint;
  artifacts: DeployedArtifact[];
  deploymentId: string;
  since: Date | undefined;
  /** The live colour of a blue-green deployment; undefined for other strategies. */
  liveColour: string | undefined;
}

/**
 * What runs in the environment after the succeeded or rolled-back deployment whose outcome has
 * `sequence`, and its colour: kept unless a later outcome of the environment set them already.
 */
export async function recordBaseline(tx: Queryable, environment: string, baseline: Baseline) {
  await tx.query(
    `UPDATE environment_outcomes SET baseline = $2, baseline_deployment_id = $3, baseline_since = $4,
       baseline_sequence = $5 WHERE name = $1 AND baseline_sequence < $5`,
    [environment, artifactsToJson(baseline.artifacts), baseline.deploymentId, baseline.since, baseline.sequence],
  );
  await recordLiveColour(tx, environment, baseline);
}

/**
 * A blue-green outcome's colour, kept unless a later outcome set one already (a rebuild writes the
 * deployments in no particular order).
 */
export async function recordLiveColour(
  tx: Queryable,
  environment: string,
  { liveColour, sequence }: Pick<Baseline, "liveColour" | "sequence">,
) {
  if (liveColour === undefined) return;
  await tx.query(
    `UPDATE environment_outcomes SET live_colour = $2, live_colour_sequence = $3
     WHERE name = $1 AND live_colour_sequence < $3`,
    [environment, liveColour, sequence],
  );
}

export async function saveDeployment(tx: Queryable, deployment: Deployment) {
  await saveDeployments(tx, [deployment]);
}

/**
 * Upserts the deployments' rows in one statement (a rebuild writes a thousand a call). The
 * artifact ids go as JSON, as unnest cannot take arrays of differing lengths.
 */
export async function saveDeployments(tx: Queryable, given: readonly Deployment[]) {
  const deployments = lastPerKey(given, (deployment) => deployment.deploymentId);
  if (deployments.length === 0) return;
  await tx.query({
    name: "deployments_upsert",
    text: `INSERT INTO deployments (deployment_id, release_id, environment, state, artifact_ids, created_at, deployment)
           SELECT id, release, environment, state, ${textArrayOfJson("artifacts")}, created_at, data
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::jsonb[], $6::timestamptz[], $7::bytea[])
             AS r (id, release, environment, state, artifacts, created_at, data)
           ON CONFLICT (deployment_id) DO UPDATE SET state = EXCLUDED.state, deployment = EXCLUDED.deployment`,
    values: unnestColumns(
      deployments.map((deployment) => [
        deployment.deploymentId,
        deployment.releaseId,
        deployment.environment,
        deployment.state,
        JSON.stringify(packageKey(deployment.artifacts)),
        // The plan's time (milliseconds, as the page tokens carry it), which a rebuild finds again.
        instantOf(deployment.createdAt, new Date(0)).toISOString(),
        toBinary(DeploymentSchema, deployment),
      ]),
      7,
    ),
  });
}

/** The deployment as its last command left it; undefined when there is no such deployment. */
export async function findDeployment(db: Queryable, deploymentId: string): Promise<Deployment | undefined> {
  const { rows } = await db.query<{ deployment: Uint8Array }>(
    "SELECT deployment FROM deployments WHERE deployment_id = $1",
    [deploymentId],
  );
  return rows[0] ? fromBinary(DeploymentSchema, rows[0].deployment) : undefined;
}

/** A package is its set of DML artifact ids, whatever the order. */
export const packageKey = (artifacts: DeployedArtifact[]) =>
  [...new Set(artifacts.map((artifact) => artifact.artifactId))].sort();

export async function packageSucceededIn(db: Queryable, releaseId: string, environment: string, artifactIds: string[]) {
  const { rowCount } = await db.query(
    "SELECT 1 FROM deployments WHERE release_id = $1 AND environment = $2 AND state = $3 AND artifact_ids = $4",
    [releaseId, environment, DeploymentState.SUCCEEDED, artifactIds],
  );
  return (rowCount ?? 0) > 0;
}

/** The deployments scheduled and not begun (see migration 16). */
export async function scheduledDeployments(db: Queryable): Promise<Deployment[]> {
  const { rows } = await db.query<{ deployment: Uint8Array }>(
    `SELECT deployment FROM deployments WHERE state = ${DeploymentState.SCHEDULED}`,
  );
  return rows.map((row) => fromBinary(DeploymentSchema, row.deployment));
}

const RUNNING_STATES = [
  DeploymentState.SCHEDULED,
  DeploymentState.IN_PROGRESS,
  DeploymentState.VERIFYING,
  // FAILED is not: a failure starts its rollback in the same append, and a FAILED deployment
  // whose rollback was given up leaves the environment to the next one.
  DeploymentState.ROLLING_BACK,
];

export async function runningDeployment(db: Queryable, environment: string, except: string) {
  const { rows } = await db.query<{ deployment_id: string }>(
    "SELECT deployment_id FROM deployments WHERE environment = $1 AND state = ANY($2) AND deployment_id <> $3 LIMIT 1",
    [environment, RUNNING_STATES, except],
  );
  return rows[0]?.deployment_id;
}

/**
 * Deployments newest first; `after`: the (created_at, deployment_id) of the last one of the
 * previous page (a keyset, so deployments planned meanwhile neither repeat nor shift the pages).
 */
export async function listDeployments(
  db: Queryable,
  filter: { releaseId: string; environment: string; states: DeploymentState[] },
  page: { after: [string, string] | undefined; limit: number },
): Promise<{ deployment: Deployment; createdAt: Date }[]> {
  const { rows } = await db.query<{ deployment: Uint8Array; created_at: Date }>(
    `SELECT deployment, created_at FROM deployments
     WHERE ($1 = '' OR release_id = NULLIF($1, '')::uuid) AND ($2 = '' OR environment = $2)
       AND (cardinality($3::int[]) = 0 OR state = ANY($3))
       AND ($4::timestamptz IS NULL OR (created_at, deployment_id) < ($4::timestamptz, $5::uuid))
     ORDER BY created_at DESC, deployment_id DESC LIMIT $6`,
    [filter.releaseId, filter.environment, filter.states, page.after?.[0] ?? null, page.after?.[1] ?? null, page.limit],
  );
  return rows.map((row) => ({ deployment: fromBinary(DeploymentSchema, row.deployment), createdAt: row.created_at }));
}
