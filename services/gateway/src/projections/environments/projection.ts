import { DEPLOYMENT_EVENTS_TOPIC } from "@rdm/messaging";
import {
  type Environment,
  type EnvironmentChanged,
  EnvironmentChangedSchema,
  type EnvironmentRegistered,
  EnvironmentRegisteredSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import { type ProjectedEvent, type Projection, versionGuard } from "../projection.js";
import { environmentDefinitionMigrations } from "./migrations.js";

/** An environment's definition as stored; a type, so it fits the route schemas. */
export type EnvironmentDefinition = {
  promotionRank: number;
  promotesFrom: string;
  /** As its definition says; null: unset, production when no environment promotes from it (read time). */
  production: boolean | null;
  frozen: boolean;
  freezeReason: string;
  protection: { approvalGroup: string; quorum: number };
  targetGroups: { name: string; ciIds: string[] }[];
  executorLabels: string[];
};

export function toDefinition(e: Environment): EnvironmentDefinition {
  return {
    promotionRank: e.promotionRank,
    promotesFrom: e.promotesFrom,
    production: e.production ?? null,
    frozen: e.frozen,
    freezeReason: e.freezeReason,
    protection: { approvalGroup: e.protection?.approvalGroup ?? "", quorum: e.protection?.quorum ?? 0 },
    targetGroups: e.targetGroups.map((g) => ({ name: g.name, ciIds: [...g.ciIds] })),
    executorLabels: [...e.executorLabels],
  };
}

async function applyDefinition(
  event: ProjectedEvent<EnvironmentRegistered | EnvironmentChanged>,
  tx: pg.PoolClient,
): Promise<void> {
  const environment = event.message.environment;
  if (!environment?.name) return;
  await tx.query(
    `INSERT INTO environment_definition_view AS e (environment, promotion_rank, definition, version, updated_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (environment) DO UPDATE SET promotion_rank = EXCLUDED.promotion_rank,
       definition = EXCLUDED.definition, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
     WHERE EXCLUDED.version = 0 OR ${versionGuard("e.version", 4)}`,
    [
      environment.name,
      environment.promotionRank,
      JSON.stringify(toDefinition(environment)),
      event.version.toString(),
      event.occurredAt,
    ],
  );
}

/** Each environment's newest definition: promotion order, production flag, protection, freeze. */
export const environmentDefinitionProjection: Projection<EnvironmentRegistered | EnvironmentChanged> = {
  name: "gateway.environment-definitions",
  topic: DEPLOYMENT_EVENTS_TOPIC,
  handles: [EnvironmentRegisteredSchema, EnvironmentChangedSchema],
  migrations: environmentDefinitionMigrations,
  apply: applyDefinition,
};
