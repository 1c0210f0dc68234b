import type { Migration } from "@rdm/eventstore";
import { type CloudEvent, decodeEvent } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import { ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestAuthorizedSchema,
  ChangeRequestCancelledSchema,
  ChangeRequestClosedSchema,
  ChangeRequestDetailsUpdatedSchema,
  ChangeRequestFailedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestRejectedSchema,
  ChangeRequestScheduledSchema,
  FreezeWindowDeclaredSchema,
  FreezeWindowLiftedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { CiLifecycleStatus } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ArtifactQuarantinedSchema,
  ArtifactRegisteredSchema,
  ArtifactRetiredSchema,
  ArtifactVerifiedSchema,
  ConfigurationItemRegisteredSchema,
  ConfigurationItemStatusChangedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import {
  ReleaseAbandonedSchema,
  ReleaseApprovalGrantedSchema,
  ReleaseApprovalRejectedSchema,
  ReleaseChangeRequestLinkedSchema,
  ReleaseChangeRequestUnlinkedSchema,
  ReleasePackageFrozenSchema,
  ReleasePhaseAdvancedSchema,
  ReleasePhaseReworkedSchema,
  ReleaseRegisteredSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type { Queryable } from "../store/tables.js";

/**
 * What the start gates need of the release, change and configuration services (releases, changes,
 * the change calendar's freeze windows, DML artifacts, the CMDB's retired items), kept from their topics. Each handler writes absolute values from one event (no counters), so a redelivered
 * message changes nothing and replaying a topic from the start rebuilds the same rows.
 */
/** The event types each apply function below reads, by topic; their consumers pass the others by. */
export const UPSTREAM_FACT_EVENTS = {
  release: typeNames(
    ReleaseRegisteredSchema,
    ReleasePhaseAdvancedSchema,
    ReleasePhaseReworkedSchema,
    ReleaseApprovalGrantedSchema,
    ReleaseApprovalRejectedSchema,
    ReleaseChangeRequestLinkedSchema,
    ReleaseChangeRequestUnlinkedSchema,
    ReleaseAbandonedSchema,
    ReleasePackageFrozenSchema,
  ),
  change: typeNames(
    ChangeRequestRaisedSchema,
    ChangeRequestAuthorizedSchema,
    ChangeRequestRejectedSchema,
    ChangeRequestCancelledSchema,
    FreezeWindowDeclaredSchema,
    FreezeWindowLiftedSchema,
    ChangeRequestScheduledSchema,
    ChangeRequestDetailsUpdatedSchema,
    ChangeRequestFailedSchema,
    ChangeRequestClosedSchema,
  ),
  configuration: typeNames(
    ArtifactRegisteredSchema,
    ArtifactVerifiedSchema,
    ArtifactQuarantinedSchema,
    ArtifactRetiredSchema,
    ConfigurationItemRegisteredSchema,
    ConfigurationItemStatusChangedSchema,
  ),
};

function typeNames(...schemas: { typeName: string }[]): ReadonlySet<string> {
  return new Set(schemas.map((s) => s.typeName));
}

export const upstreamFactsMigrations: Migration[] = [
  {
    version: 2,
    name: "gate facts from the release, change and configuration topics",
    sql: `
      CREATE TABLE gate_releases (release_id text PRIMARY KEY, phase int NOT NULL DEFAULT 0, approved boolean NOT NULL DEFAULT false);
      CREATE TABLE gate_changes (
        change_id text PRIMARY KEY,
        emergency boolean NOT NULL DEFAULT false,
        authorized boolean NOT NULL DEFAULT false,
        window_start timestamptz,
        window_end timestamptz
      );
      CREATE TABLE gate_artifacts (
        artifact_id text PRIMARY KEY,
        verified boolean NOT NULL DEFAULT false,
        quarantined boolean NOT NULL DEFAULT false
      );
    `,
  },
  {
    version: 3,
    name: "freeze windows of the change calendar",
    sql: `
      -- lifted is set by FreezeWindowLifted only: a redelivered declaration never thaws a window.
      CREATE TABLE gate_freeze_windows (
        freeze_window_id text PRIMARY KEY,
        name text NOT NULL DEFAULT '',
        reason text NOT NULL DEFAULT '',
        window_start timestamptz,
        window_end timestamptz,
        scope_all boolean NOT NULL DEFAULT false,
        ci_ids text[] NOT NULL DEFAULT '{}',
        environments text[] NOT NULL DEFAULT '{}',
        lifted boolean NOT NULL DEFAULT false
      );
    `,
  },
  {
    version: 5,
    name: "change requests linked to each release",
    // A change linked to the release after it was approved gates its deployments too, whether or
    // not the deployment plan names it.
    sql: `CREATE TABLE gate_release_changes (
        release_id text NOT NULL,
        change_id  text NOT NULL,
        PRIMARY KEY (release_id, change_id)
      );`,
  },
  {
    version: 6,
    name: "cancelled change requests",
    // A cancelled change is final: no later change event sets it back.
    sql: "ALTER TABLE gate_changes ADD COLUMN cancelled boolean NOT NULL DEFAULT false;",
  },
  {
    version: 7,
    name: "abandoned releases",
    // Abandoning is final and leaves the phase as it was: no later release event clears it.
    sql: "ALTER TABLE gate_releases ADD COLUMN abandoned boolean NOT NULL DEFAULT false;",
  },
  {
    version: 10,
    name: "the DML's name and version of each artifact",
    // NULL for artifacts heard of before: the identity gate has nothing to compare them with.
    sql: "ALTER TABLE gate_artifacts ADD COLUMN name text, ADD COLUMN version text;",
  },
  {
    version: 12,
    name: "release packages, and changes failed or closed",
    // package: the artifact ids the release froze (NULL: frozen before this version, or not yet).
    // ended: FAILED or CLOSED, the state after which the change covers no further deployment (''
    // while it may). Changes that ended before this version are not known as ended: their events
    // were passed by.
    sql: `
      ALTER TABLE gate_releases ADD COLUMN package text[];
      ALTER TABLE gate_changes ADD COLUMN ended text NOT NULL DEFAULT '';`,
  },
  {
    version: 13,
    name: "the environments a change names",
    // From its raise, schedule and detail updates (empty: production, as the change service reads
    // it). NULL: not heard since this version; such a change gates every environment, as before.
    sql: "ALTER TABLE gate_changes ADD COLUMN environments text[];",
  },
  {
    version: 14,
    name: "configuration items of the CMDB, and which are retired",
    // Ids lowercased, as targets are compared. Retiring is final in the CMDB, so retired only ever
    // turns true. Items registered or retired before this version are not known: their events
    // were passed by, and such a target is not refused.
    sql: `CREATE TABLE gate_configuration_items (
        ci_id   text PRIMARY KEY,
        retired boolean NOT NULL DEFAULT false
      );`,
  },
];

/**
 * The change events after which a change covers no further deployment: a failure (its back-out
 * done; a review after it changes nothing), or the close. An implementation or a review after it
 * does not end it: it still covers the release's deployments (a redeployment, say).
 */
const ENDING_SCHEMAS = [ChangeRequestFailedSchema, ChangeRequestClosedSchema] as const;

/** An environment's target ids are at most this long (events.proto's TargetGroup). */
const MAX_TARGET_ID_LENGTH = 200;

const upsert = (table: string, key: string, column: string) =>
  `INSERT INTO ${table} (${key}, ${column}) VALUES ($1, $2) ON CONFLICT (${key}) DO UPDATE SET ${column} = EXCLUDED.${column}`;

export async function applyReleaseEvent(event: CloudEvent, tx: Queryable): Promise<void> {
  switch (event.type) {
    case ReleaseRegisteredSchema.typeName: {
      const { releaseId, phase } = decodeEvent(ReleaseRegisteredSchema, event);
      await tx.query(upsert("gate_releases", "release_id", "phase"), [releaseId, phase]);
      return;
    }
    case ReleasePhaseAdvancedSchema.typeName:
    case ReleasePhaseReworkedSchema.typeName: {
      const schema =
        event.type === ReleasePhaseAdvancedSchema.typeName ? ReleasePhaseAdvancedSchema : ReleasePhaseReworkedSchema;
      const { releaseId, toPhase } = decodeEvent(schema, event);
      await tx.query(upsert("gate_releases", "release_id", "phase"), [releaseId, toPhase]);
      // The release service lets a release into DEPLOYMENT only once the approvals of every phase
      // before it were met: entering it approves, whatever its model asks for (none, or a board
      // of two). A rejection after that withdraws it, until a quorum approves again.
      if (toPhase === ReleasePhase.DEPLOYMENT)
        await tx.query(upsert("gate_releases", "release_id", "approved"), [releaseId, true]);
      return;
    }
    case ReleaseApprovalGrantedSchema.typeName: {
      const { releaseId, quorumReached } = decodeEvent(ReleaseApprovalGrantedSchema, event);
      if (quorumReached) await tx.query(upsert("gate_releases", "release_id", "approved"), [releaseId, true]);
      return;
    }
    case ReleaseAbandonedSchema.typeName: {
      const { releaseId } = decodeEvent(ReleaseAbandonedSchema, event);
      await tx.query(upsert("gate_releases", "release_id", "abandoned"), [releaseId, true]);
      break;
    }
    case ReleasePackageFrozenSchema.typeName: {
      // A rework unfreezes it; the next freeze says the package again.
      const frozen = decodeEvent(ReleasePackageFrozenSchema, event);
      await tx.query(upsert("gate_releases", "release_id", "package"), [
        frozen.releaseId,
        frozen.package.map((artifact) => artifact.artifactId),
      ]);
      return;
    }
    case ReleaseApprovalRejectedSchema.typeName: {
      const { releaseId } = decodeEvent(ReleaseApprovalRejectedSchema, event);
      await tx.query(upsert("gate_releases", "release_id", "approved"), [releaseId, false]);
      return;
    }
    case ReleaseChangeRequestLinkedSchema.typeName: {
      const { releaseId, changeRequestId } = decodeEvent(ReleaseChangeRequestLinkedSchema, event);
      await tx.query("INSERT INTO gate_release_changes VALUES ($1, $2) ON CONFLICT DO NOTHING", [
        releaseId,
        changeRequestId.toLowerCase(),
      ]);
      return;
    }
    case ReleaseChangeRequestUnlinkedSchema.typeName: {
      const { releaseId, changeRequestId } = decodeEvent(ReleaseChangeRequestUnlinkedSchema, event);
      await tx.query("DELETE FROM gate_release_changes WHERE release_id = $1 AND change_id = $2", [
        releaseId,
        changeRequestId.toLowerCase(),
      ]);
      return;
    }
  }
}

export async function applyChangeEvent(event: CloudEvent, tx: Queryable): Promise<void> {
  switch (event.type) {
    case ChangeRequestRaisedSchema.typeName: {
      const raised = decodeEvent(ChangeRequestRaisedSchema, event);
      await tx.query(upsert("gate_changes", "change_id", "emergency"), [
        raised.changeRequestId,
        raised.type === ChangeType.EMERGENCY,
      ]);
      await tx.query(upsert("gate_changes", "change_id", "environments"), [
        raised.changeRequestId,
        raised.environments,
      ]);
      return;
    }
    case ChangeRequestDetailsUpdatedSchema.typeName: {
      const updated = decodeEvent(ChangeRequestDetailsUpdatedSchema, event);
      await tx.query(upsert("gate_changes", "change_id", "environments"), [
        updated.changeRequestId,
        updated.environments,
      ]);
      return;
    }
    case ChangeRequestAuthorizedSchema.typeName:
    case ChangeRequestRejectedSchema.typeName: {
      const authorized = event.type === ChangeRequestAuthorizedSchema.typeName;
      const { changeRequestId } = decodeEvent(
        authorized ? ChangeRequestAuthorizedSchema : ChangeRequestRejectedSchema,
        event,
      );
      await tx.query(upsert("gate_changes", "change_id", "authorized"), [changeRequestId, authorized]);
      return;
    }
    case ChangeRequestCancelledSchema.typeName: {
      const { changeRequestId } = decodeEvent(ChangeRequestCancelledSchema, event);
      await tx.query(upsert("gate_changes", "change_id", "cancelled"), [changeRequestId, true]);
      return;
    }
    case ChangeRequestFailedSchema.typeName:
    case ChangeRequestClosedSchema.typeName: {
      const schema = ENDING_SCHEMAS.find((s) => s.typeName === event.type);
      if (!schema) return;
      const { changeRequestId, state } = decodeEvent(schema, event);
      await tx.query(upsert("gate_changes", "change_id", "ended"), [changeRequestId, ChangeState[state]]);
      return;
    }
    case ChangeRequestScheduledSchema.typeName: {
      const { changeRequestId, window, environments } = decodeEvent(ChangeRequestScheduledSchema, event);
      await tx.query(
        `INSERT INTO gate_changes (change_id, window_start, window_end, environments) VALUES ($1, $2, $3, $4)
         ON CONFLICT (change_id) DO UPDATE SET window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
           environments = EXCLUDED.environments`,
        [changeRequestId, instantOf(window?.start, null), instantOf(window?.end, null), environments],
      );
      return;
    }
    default:
      await applyFreezeWindowEvent(event, tx);
  }
}

/** The change calendar's freeze windows, declared and lifted. */
async function applyFreezeWindowEvent(event: CloudEvent, tx: Queryable): Promise<void> {
  switch (event.type) {
    case FreezeWindowDeclaredSchema.typeName: {
      const { freezeWindowId, name, reason, window, scope } = decodeEvent(FreezeWindowDeclaredSchema, event);
      await tx.query(
        `INSERT INTO gate_freeze_windows (freeze_window_id, name, reason, window_start, window_end, scope_all, ci_ids, environments)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (freeze_window_id) DO UPDATE SET name = EXCLUDED.name, reason = EXCLUDED.reason,
           window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end, scope_all = EXCLUDED.scope_all,
           ci_ids = EXCLUDED.ci_ids, environments = EXCLUDED.environments`,
        [
          freezeWindowId,
          name,
          reason,
          instantOf(window?.start, null),
          instantOf(window?.end, null),
          scope?.all ?? false,
          scope?.ciIds ?? [],
          scope?.environments ?? [],
        ],
      );
      return;
    }
    case FreezeWindowLiftedSchema.typeName: {
      const { freezeWindowId } = decodeEvent(FreezeWindowLiftedSchema, event);
      await tx.query(upsert("gate_freeze_windows", "freeze_window_id", "lifted"), [freezeWindowId, true]);
      return;
    }
  }
}

export async function applyConfigurationEvent(event: CloudEvent, tx: Queryable): Promise<void> {
  const artifactUpsert = (column: string, value: boolean, id: string) =>
    tx.query(upsert("gate_artifacts", "artifact_id", column), [id, value]);
  switch (event.type) {
    case ArtifactRegisteredSchema.typeName: {
      // A DML version never changes: what it registered is what the plan must name (the gate).
      const { artifactId, name, version } = decodeEvent(ArtifactRegisteredSchema, event);
      await tx.query(
        `INSERT INTO gate_artifacts (artifact_id, name, version) VALUES ($1, $2, $3)
         ON CONFLICT (artifact_id) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version`,
        [artifactId, name, version],
      );
      return;
    }
    case ArtifactVerifiedSchema.typeName:
      await artifactUpsert("verified", true, decodeEvent(ArtifactVerifiedSchema, event).artifactId);
      return;
    case ArtifactQuarantinedSchema.typeName:
      await artifactUpsert("quarantined", true, decodeEvent(ArtifactQuarantinedSchema, event).artifactId);
      return;
    case ArtifactRetiredSchema.typeName:
      // A retired artifact is no longer deployable: it counts as unverified from then on.
      await artifactUpsert("verified", false, decodeEvent(ArtifactRetiredSchema, event).artifactId);
      return;
    case ConfigurationItemRegisteredSchema.typeName: {
      const { ciId, status } = decodeEvent(ConfigurationItemRegisteredSchema, event);
      await configurationItemUpsert(tx, ciId, status);
      return;
    }
    case ConfigurationItemStatusChangedSchema.typeName: {
      const { ciId, to } = decodeEvent(ConfigurationItemStatusChangedSchema, event);
      await configurationItemUpsert(tx, ciId, to);
      return;
    }
  }
}

/**
 * A configuration item heard of; OR: whatever arrives after its retirement (a registration
 * replayed), it stays retired. An id longer than any target can be (200 characters) is passed by:
 * no plan names it, and it could outgrow the key's index.
 */
async function configurationItemUpsert(tx: Queryable, ciId: string, status: CiLifecycleStatus): Promise<void> {
  if ([...ciId].length > MAX_TARGET_ID_LENGTH) return;
  await tx.query(
    `INSERT INTO gate_configuration_items (ci_id, retired) VALUES ($1, $2)
     ON CONFLICT (ci_id) DO UPDATE SET retired = gate_configuration_items.retired OR EXCLUDED.retired`,
    [ciId.toLowerCase(), status === CiLifecycleStatus.RETIRED],
  );
}
