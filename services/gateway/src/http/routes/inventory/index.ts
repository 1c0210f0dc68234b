import { notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { arr, obj } from "../../schema-parts.js";
import {
  inventoryEntries,
  KNOWN_ENVIRONMENTS,
  type KnownEnvironmentRow,
  toInventoryEntry,
  toKnownEnvironment,
  unknownEnvironment,
} from "../deployments/queries.js";
import { environmentName, inventoryEntrySchema, knownEnvironmentSchema } from "../deployments/schemas.js";

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
          "from the deployment outcomes in each environment's order (environment_sequence); a rollback replaces the " +
          "entries of the artifacts it restored on the targets it deployed to (of every artifact, for one recorded before " +
          "rollbacks named them) with what it restored. targetCiId and artifactName narrow the entries; " +
          "environment names one (404 when it is neither defined nor deployed to).",
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
          200: obj({
            environments: arr(obj({ ...knownEnvironmentSchema.properties, entries: arr(inventoryEntrySchema) })),
          }),
          400: problemSchema,
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { environment, targetCiId, artifactName } = request.query;
      const { rows: environments } = await pool.query<KnownEnvironmentRow>(
        `SELECT * FROM (${KNOWN_ENVIRONMENTS}) k WHERE $1::text IS NULL OR k.name = $1
         ORDER BY k.promotion_rank NULLS LAST, k.name`,
        [environment ?? null],
      );
      // One environment asked for by name: one the gateway does not know is not an empty one.
      if (environment !== undefined && environments.length === 0)
        return notFound(reply, unknownEnvironment(environment));
      const rows = await inventoryEntries(pool, { environment, targetCiId, artifactName });
      return {
        environments: environments.map((e) => ({
          ...toKnownEnvironment(e),
          entries: rows.filter((r) => r.environment === e.name).map(toInventoryEntry),
        })),
      };
    },
  );
};
