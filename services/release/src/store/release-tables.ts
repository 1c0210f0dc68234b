import type { Migration } from "@rdm/eventstore";
import { yearlyNumbersSql } from "@rdm/keys";
import { SubscriptionStatus } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { notificationMigrations } from "./notification-tables.js";
import { DEFAULT_SUBSCRIPTION_ID } from "./subscriptions.js";

/**
 * The service's own tables beside its event store. Each is written in the transaction that
 * appends the events it derives from, so none can disagree with the streams.
 */
export const releaseMigrations: Migration[] = [
  {
    version: 1,
    name: "release keys",
    // Per-year counters for human-readable keys (REL-2026-0042); gaps are allowed. Replaced by
    // sequences (version 5).
    sql: "CREATE TABLE release_keys (year int PRIMARY KEY, last int NOT NULL)",
  },
  {
    version: 2,
    name: "release index, deadlines, notification deliveries, change request states",
    sql: `
      -- Current state of each release for ListReleases (filters and keyset paging).
      CREATE TABLE release_index (
        release_id    uuid PRIMARY KEY,
        key           text NOT NULL,
        title         text NOT NULL,
        type          int NOT NULL,
        phase         int NOT NULL,
        status        int NOT NULL,
        owner         text NOT NULL,
        registered_at timestamptz NOT NULL,
        phase_due_at  timestamptz,
        snapshot      bytea NOT NULL
      );
      CREATE INDEX release_index_page ON release_index (registered_at DESC, release_id DESC);

      -- Durable schedule of phase deadlines: one row per phase entry and kind ('missed' at the
      -- due time, 'escalation' after the grace period). A row is claimed with FOR UPDATE SKIP
      -- LOCKED and marked fired in the transaction that appends its event.
      CREATE TABLE release_deadlines (
        release_id  uuid NOT NULL,
        phase_entry int NOT NULL,
        kind        text NOT NULL CHECK (kind IN ('missed', 'escalation')),
        due_at      timestamptz NOT NULL,
        fired_at    timestamptz,
        outcome     text,
        PRIMARY KEY (release_id, phase_entry, kind)
      );
      CREATE INDEX release_deadlines_due ON release_deadlines (due_at) WHERE fired_at IS NULL;

      -- Webhook deliveries of NotificationRequested events.
      CREATE TABLE notification_deliveries (
        notification_id uuid PRIMARY KEY,
        release_id      uuid NOT NULL,
        trigger         text NOT NULL,
        recipients      jsonb NOT NULL,
        payload         jsonb NOT NULL,
        status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
        attempts        int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        last_error      text NOT NULL DEFAULT '',
        delivered_at    timestamptz,
        created_at      timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'PENDING';
      CREATE INDEX notification_deliveries_release ON notification_deliveries (release_id);

      -- Local read model of change requests, from rdm.change.events.v1.
      CREATE TABLE change_request_states (
        change_request_id text PRIMARY KEY,
        state             text NOT NULL,
        linked_release_id text NOT NULL DEFAULT '',
        updated_at        timestamptz NOT NULL
      );`,
  },
  {
    version: 3,
    name: "change request state version",
    // The change stream version of the stored state, so a replayed older event never wins.
    sql: "ALTER TABLE change_request_states ADD COLUMN version bigint NOT NULL DEFAULT 0",
  },
  {
    version: 4,
    name: "release stream type",
    // Release streams (bare UUIDs) used to be appended without a type, so the store typed each by
    // its id's first segment. Events already published keep that ce_streamtype on Kafka.
    sql: `
      UPDATE streams SET stream_type = 'release'
      WHERE stream_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
      UPDATE events SET stream_type = 'release'
      WHERE stream_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';`,
  },
  ...notificationMigrations,
  {
    version: 8,
    name: "release keys from a sequence per year",
    // The per-year counter row serialised every registration on its lock until commit; a
    // sequence hands out numbers without a lock (gaps remain allowed). Each year's sequence
    // continues after the counter's last number.
    sql: yearlyNumbersSql("rdm_next_release_number", "release_key", "release_keys"),
  },
  {
    version: 9,
    name: "notifications requested while no webhook is configured are skipped",
    // As a paused subscription skips what it missed: requested while the default webhook's
    // subscription was not active, a notification is recorded SKIPPED, never sent later. Those
    // still pending from before are skipped now unless that subscription is active.
    sql: `
      ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_status_check;
      ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_status_check
        CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED'));
      UPDATE notification_deliveries SET status = 'SKIPPED'
      WHERE status = 'PENDING' AND NOT EXISTS (
        SELECT 1 FROM notification_subscriptions
        WHERE subscription_id = '${DEFAULT_SUBSCRIPTION_ID}' AND status = ${SubscriptionStatus.ACTIVE});
    `,
  },
  {
    version: 11,
    name: "subscription deliveries in the order they were recorded",
    // A subscription's deliveries go out one after another in this order: a retry waiting on its
    // backoff holds the later ones back rather than be overtaken. Existing rows are numbered by
    // their events' time (their physical order moved with every retry's update).
    sql: `
      ALTER TABLE subscription_deliveries ADD COLUMN seq bigint;
      UPDATE subscription_deliveries d SET seq = o.n
      FROM (SELECT delivery_id, row_number() OVER (ORDER BY occurred_at, delivery_id) AS n
            FROM subscription_deliveries) o
      WHERE d.delivery_id = o.delivery_id;
      ALTER TABLE subscription_deliveries ALTER COLUMN seq SET NOT NULL,
        ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY;
      SELECT setval(pg_get_serial_sequence('subscription_deliveries', 'seq'),
                    (SELECT coalesce(max(seq), 0) + 1 FROM subscription_deliveries), false);
      CREATE INDEX subscription_deliveries_pending ON subscription_deliveries (subscription_id, seq)
        WHERE status = 'PENDING';
    `,
  },
  {
    version: 12,
    name: "change request environments",
    // The environments a change names (its raise, schedule and detail updates say them), so a
    // subscription filtered by environment also takes the change's events that do not: submitted,
    // approved, rejected, cancelled. NULL: not heard of (changes known from before). Moved to
    // notifier_change_environments alone by version 14, and no longer written.
    sql: `
      ALTER TABLE change_request_states ADD COLUMN environments text[];
      -- The same, as the notifier reads the change topic (its own consumer group): what a change's
      -- earlier events said, in its stream's order, whichever group reads faster.
      CREATE TABLE notifier_change_environments (
        change_request_id text PRIMARY KEY,
        environments      text[] NOT NULL,
        version           bigint NOT NULL
      );
    `,
  },
  {
    version: 13,
    name: "default target deliveries in the order they were recorded",
    // As version 11 for subscriptions: the default target's deliveries go out one after another
    // in this order, a retry waiting on its backoff holding the later ones back. Existing rows are
    // numbered by when they were recorded.
    sql: `
      ALTER TABLE notification_deliveries ADD COLUMN seq bigint;
      UPDATE notification_deliveries d SET seq = o.n
      FROM (SELECT notification_id, row_number() OVER (ORDER BY created_at, notification_id) AS n
            FROM notification_deliveries) o
      WHERE d.notification_id = o.notification_id;
      ALTER TABLE notification_deliveries ALTER COLUMN seq SET NOT NULL,
        ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY;
      SELECT setval(pg_get_serial_sequence('notification_deliveries', 'seq'),
                    (SELECT coalesce(max(seq), 0) + 1 FROM notification_deliveries), false);
      DROP INDEX notification_deliveries_due;
      CREATE INDEX notification_deliveries_pending ON notification_deliveries (seq) WHERE status = 'PENDING';
    `,
  },
  {
    version: 14,
    name: "change environments in one place",
    // The notifier now keeps every change's environments itself, subscriptions or not: what the
    // read model of changes knew better (changes raised or updated while no subscription existed)
    // moves there. The column stays, unread, while replicas running the code before this one may
    // still write it during an upgrade; a later migration drops it.
    sql: `
      INSERT INTO notifier_change_environments AS n (change_request_id, environments, version)
      SELECT change_request_id, environments, version FROM change_request_states WHERE environments IS NOT NULL
      ON CONFLICT (change_request_id) DO UPDATE SET environments = EXCLUDED.environments, version = EXCLUDED.version
        WHERE n.version < EXCLUDED.version;
    `,
  },
  {
    version: 15,
    name: "deployment changes",
    // The changes a deployment's plan, start and outcomes name, as the notifier reads the
    // deployment topic, so a subscription filtered by change also takes the deployment's events
    // that name none (approval, steps, pause, cancel, rollback started). Deployments whose plan
    // and start the notifier read before this version are known from their next outcome on.
    sql: `
      CREATE TABLE notifier_deployment_changes (
        deployment_id      text PRIMARY KEY,
        change_request_ids text[] NOT NULL
      );
    `,
  },
  {
    version: 16,
    name: "change keys",
    // A change's key, from its raise, for the titles of its later events' notifications. Changes
    // raised before this version are titled by their id.
    sql: `
      CREATE TABLE notifier_change_keys (
        change_request_id text PRIMARY KEY,
        key               text NOT NULL
      );
    `,
  },
  {
    version: 17,
    name: "deployments started",
    // Whether the notifier read the deployment's start (DeploymentScheduled or later): until then
    // its events also match the changes linked to its release, which its start's gates will
    // check. Deployments started before this version are taken as not started.
    sql: "ALTER TABLE notifier_deployment_changes ADD COLUMN started boolean NOT NULL DEFAULT false",
  },
  {
    version: 18,
    name: "change links to say again",
    // The releases whose link the change answered with a release that was letting it go: they say
    // their link again once that release's unlink clears the change's link (consumers/change-links.ts).
    sql: "ALTER TABLE change_request_states ADD COLUMN relink_release_ids text[] NOT NULL DEFAULT '{}'",
  },
  {
    version: 19,
    name: "deployments begun",
    // Whether the notifier read the deployment's begin (DeploymentStarted, or an outcome, naming
    // the changes it implements): from then on its changes are those, not every one named before.
    // Deployments begun before this version keep every change named until their next outcome.
    sql: "ALTER TABLE notifier_deployment_changes ADD COLUMN begun boolean NOT NULL DEFAULT false",
  },
  {
    version: 20,
    name: "change environments with their state",
    // A change's environments are read again with its state, in the same consumer's transaction,
    // for the production environments a release waits for (the notifier's own copy lags on its own
    // consumer group). The column unread since version 14 is filled from that copy.
    sql: `
      UPDATE change_request_states s SET environments = n.environments
      FROM notifier_change_environments n WHERE n.change_request_id = s.change_request_id;
    `,
  },
  {
    version: 21,
    name: "deployment targets",
    // The targets a deployment's plan names, so a subscription filtered by service takes the
    // deployment's events that name none (its start, steps, cancellation). Deployments planned
    // before this version are matched by what each event names, as before.
    sql: "ALTER TABLE notifier_deployment_changes ADD COLUMN target_ci_ids text[] NOT NULL DEFAULT '{}'",
  },
  {
    version: 22,
    name: "changes rejected",
    // Whether a change was ever rejected: one closed after its rejection counts as rejected for
    // the release gates, not as a CLOSED (authorized) one. Changes closed after a rejection before
    // this version count as closed.
    sql: `
      ALTER TABLE change_request_states ADD COLUMN rejected boolean NOT NULL DEFAULT false;
      UPDATE change_request_states SET rejected = true WHERE state = 'REJECTED';
    `,
  },
];
