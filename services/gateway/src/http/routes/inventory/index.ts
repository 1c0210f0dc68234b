import { equalityFilters, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { arr, obj } from "../../schema-parts.js";
import { KNOWN_ENVIRONMENTS, type KnownEnvironmentRow, toKnownEnvironment } from "../deployments/queries.js";
import { environmentName, inventoryEntrySchema, knownEnvironmentSchema } from "../deployments/schemas.js";

interface EntryRow {
  environment: string;
  target_ci_id: string;
  target_name: string | null;
  artifact_name: string;
  artifact_version: string;
  artifact_id: string;
  since: Date;
  deployment_id: string;
  release_id: string;
  release_key: string | null;
  via: string;
}

const entrySchema = obj({
  ...inventoryEntrySchema.properties,
  releaseKey: {
    type: ["string", "null"],
    description: "the release's key, when the release events reached the gateway",
  },
});

/**
 * Every environment's inventory in one answer, in promotion order: which version of which artifact
 * runs on which target, since when, put there by which deployment of which release (the
 * per-environment route is /v1/environments/{environment}/inventory). Environments defined but not
 * yet deployed to are listed with no entries, as on /v1/environments.
 */
export const inventoryRoutes: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/inventory",
    {
      schema: {
        tags: ["inventory"],
        summary: "What runs where, in every environment: version per target and artifact, since when, by what",
        description:
          "Environments in promotion order, each with its definition, as on /v1/environments. Entries are folded " +
          "from the deployment outcomes in each environment's order (environment_sequence); a rollback replaces an " +
          "environment's inventory with the baseline it restored. targetCiId and artifactName narrow the entries.",
        querystring: {
          type: "object",
          properties: {
            environment: environmentName,
            targetCiId: { type: "string", minLength: 1, maxLength: 200 },
            artifactName: { type: "string", minLength: 1, maxLength: 200 },
          },
          additionalProperties: false,
        },
        response: {
          200: obj({ environments: arr(obj({ ...knownEnvironmentSchema.properties, entries: arr(entrySchema) })) }),
          400: problemSchema,
        },
      },
    },
    async (request) => {
      const { environment, targetCiId, artifactName } = request.query;
      const { rows: environments } = await pool.query<KnownEnvironmentRow>(
        `SELECT * FROM (${KNOWN_ENVIRONMENTS}) k WHERE $1::text IS NULL OR k.name = $1
         ORDER BY k.promotion_rank NULLS LAST, k.name`,
        [environment ?? null],
      );
      const { where, args } = equalityFilters({
        "i.environment": environment,
        "i.target_ci_id": targetCiId,
        "i.artifact_name": artifactName,
      });
      const { rows } = await pool.query<EntryRow>(
        `SELECT i.*, c.name AS target_name, r.key AS release_key FROM environment_inventory_view i
           LEFT JOIN cmdb_ci_view c ON c.ci_id = i.target_ci_id
           LEFT JOIN release_view r ON r.release_id::text = i.release_id
         ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY i.environment, i.target_ci_id, i.artifact_name`,
        args,
      );
      return {
        environments: environments.map((e) => ({
          ...toKnownEnvironment(e),
          entries: rows
            .filter((r) => r.environment === e.name)
            .map((r) => ({
              targetCiId: r.target_ci_id,
              targetName: r.target_name,
              artifactName: r.artifact_name,
              artifactVersion: r.artifact_version,
              artifactId: r.artifact_id,
              since: r.since,
              deploymentId: r.deployment_id,
              releaseId: r.release_id,
              releaseKey: r.release_key,
              via: r.via,
            })),
        })),
      };
    },
  );
};
