import { isUuid } from "@rdm/runtime/process";
import type pg from "pg";
import { LISTED_DEPLOYMENTS, type ListedDeploymentRow, toDeploymentDetail } from "../deployments/queries.js";

interface LinkedChangeRow {
  change_request_id: string;
  key: string;
  title: string;
  type: string;
  state: string;
  window_start: Date | null;
  window_end: Date | null;
  updated_at: Date;
}

/** The linked change requests as the change events left them (unknown ids: not projected yet). */
export async function linkedChanges(pool: pg.Pool, ids: string[]) {
  // Compared as uuids, so the look-up uses the column's index; pg gives them back lowercase.
  const { rows } = await pool.query<LinkedChangeRow>(
    `SELECT change_request_id, key, title, type, state, window_start, window_end, updated_at FROM change_view
     WHERE change_request_id = ANY($1::uuid[])`,
    [ids.filter(isUuid)],
  );
  const byId = new Map(rows.map((r) => [r.change_request_id, r]));
  return ids.map((id) => {
    const r = byId.get(id.toLowerCase());
    return {
      changeRequestId: id,
      known: r !== undefined,
      key: r?.key ?? null,
      title: r?.title ?? null,
      type: r?.type ?? null,
      state: r?.state ?? null,
      window: r && (r.window_start || r.window_end) ? { start: r.window_start, end: r.window_end } : null,
      updatedAt: r?.updated_at ?? null,
    };
  });
}

interface ArtifactRow {
  artifact_id: string;
  name: string;
  version: string;
  sha256: string;
  status: string;
  integrity: string;
  status_reason: string;
  last_verified_at: Date | null;
}

/**
 * The package's artifacts with their DML state: integrity (UNVERIFIED, VERIFIED, MISMATCH) and
 * status, and whether the package names the artifact as the DML registered it (name, version,
 * checksum): a plan made from such an entry as the package says is refused by the deployment
 * gates (another name or version), or its package records a checksum of other bytes.
 */
export async function packageVerification(
  pool: pg.Pool,
  artifacts: { artifactId: string; name: string; version: string; sha256: string; configurationItemId: string }[],
) {
  const { rows } = await pool.query<ArtifactRow>(
    `SELECT artifact_id, name, version, sha256, status, integrity, status_reason, last_verified_at FROM dml_artifact_view
     WHERE artifact_id = ANY($1)`,
    [artifacts.map((a) => a.artifactId)],
  );
  const byId = new Map(rows.map((r) => [r.artifact_id, r]));
  return artifacts.map((a) => {
    const r = byId.get(a.artifactId);
    // Names and versions exactly, as the deployment gates compare them; checksums as hex, without case.
    const same = (field: "name" | "version" | "sha256", x: string, y: string) =>
      field === "sha256" ? x.toLowerCase() === y.toLowerCase() : x === y;
    const mismatched = r
      ? (["name", "version", "sha256"] as const).filter((field) => !same(field, r[field], a[field]))
      : [];
    return {
      ...a,
      dmlStatus: r?.status ?? "UNKNOWN",
      integrity: r?.integrity ?? "UNKNOWN",
      statusReason: r?.status_reason ?? "",
      lastVerifiedAt: r?.last_verified_at ?? null,
      identityMismatch: mismatched.map((field) => ({ field, package: a[field], dml: r?.[field] ?? "" })),
      deployable: r?.status === "ACTIVE" && r.integrity === "VERIFIED" && mismatched.length === 0,
    };
  });
}

/**
 * What stands for the release in an environment: the deployment that began last (one not begun
 * changed nothing there), else the newest plan still to begin; none when every plan was cancelled.
 */
function currentOf(deployments: ReturnType<typeof toDeploymentDetail>[]) {
  const begun = deployments.filter((d) => d.startedAt !== null);
  if (begun.length) return begun.reduce((a, b) => ((b.startedAt as Date) > (a.startedAt as Date) ? b : a));
  return deployments.find((d) => d.state !== "CANCELLED") ?? null;
}

/** The release's deployments grouped by environment, newest first in each, with their plans and steps. */
export async function deploymentsByEnvironment(pool: pg.Pool, releaseId: string) {
  const { rows } = await pool.query<ListedDeploymentRow>(
    `${LISTED_DEPLOYMENTS} WHERE p.release_id = $1 ORDER BY p.first_event_at DESC, p.deployment_id DESC`,
    [releaseId],
  );
  const environments = new Map<string, ReturnType<typeof toDeploymentDetail>[]>();
  for (const row of rows) {
    const deployment = toDeploymentDetail(row);
    environments.set(deployment.environment, [...(environments.get(deployment.environment) ?? []), deployment]);
  }
  return [...environments].map(([environment, deployments]) => ({
    environment,
    current: currentOf(deployments),
    deployments,
  }));
}
