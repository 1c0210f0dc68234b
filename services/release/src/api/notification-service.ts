import { randomUUID } from "node:crypto";
import { create, type DescMessage } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { READER_ROLES, type Role } from "@rdm/auth";
import type { CommandHandler } from "@rdm/command-handler";
import { type CallContext, InvalidArgument, NotFound, requestFingerprint, type ServiceRegistration } from "@rdm/grpc";
import * as api from "@rdm/proto/gen/rdm/notification/v1/notification_service_pb.js";
import type { Subscription, Target } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { ReleasePhaseAdvancedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { encodePageToken, isIsoTimestamp, isUuid, pageCursor, pageTokenScope } from "@rdm/runtime";
import { distance } from "fastest-levenshtein";
import type pg from "pg";
import { requireLive } from "../domain/subscription/decide.js";
import type { SubscriptionCommand, SubscriptionEvent } from "../domain/subscription/types.js";
import { undeliverable } from "../jobs/signed-post.js";
import { sendToTarget } from "../jobs/subscription-delivery.js";
import { EVENT_TYPES, eventJson, notificationPayload } from "../notifier/payload.js";
import { listSubscriptions, secretFingerprint, subscriptionCommand, withoutSecrets } from "../store/subscriptions.js";

export interface NotificationApiDeps {
  pool: pg.Pool;
  handler: CommandHandler<SubscriptionEvent>;
  clock: () => Date;
  /** Base of the gateway links in payloads. */
  linkBaseUrl: string;
  /** How long TestSubscription's POST may wait for its answer (RELEASE_WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
}

type Methods = (typeof api.NotificationService)["method"];
const MANAGERS: Role[] = ["release-manager"];

/** Who may call each RPC (admin always may): release managers manage, readers list. */
export const notificationServiceRoles: { [K in keyof Methods]: readonly Role[] } = {
  createSubscription: MANAGERS,
  updateSubscription: MANAGERS,
  pauseSubscription: MANAGERS,
  resumeSubscription: MANAGERS,
  deleteSubscription: MANAGERS,
  testSubscription: MANAGERS,
  getSubscription: READER_ROLES,
  listSubscriptions: READER_ROLES,
  listSubscriptionDeliveries: READER_ROLES,
};

const STATUS_NAMES = ["PENDING", "DELIVERED", "FAILED", "HELD", "SKIPPED"];

type Handlers = ServiceRegistration<Methods>["handlers"];
const method = api.NotificationService.method;

const simpleName = (type: string) => type.slice(type.lastIndexOf(".") + 1);
const camelWords = (name: string) => new Set((name.match(/[A-Z][a-z0-9]*/g) ?? []).map((w) => w.toLowerCase()));

/**
 * The known event type a mistyped one most likely meant: the same name in another package, else
 * one a few edits away, else one of its package sharing two words or more (ChangeSubmitted:
 * ChangeRequestSubmitted); undefined when none is close.
 */
function closestEventType(type: string): string | undefined {
  const name = simpleName(type);
  const known = [...EVENT_TYPES];
  const edits = (candidate: string) => distance(simpleName(candidate).toLowerCase(), name.toLowerCase());
  const nearest = known.reduce((best, candidate) => (edits(candidate) < edits(best) ? candidate : best));
  if (edits(nearest) <= Math.max(2, Math.floor(name.length / 4))) return nearest;
  const words = camelWords(name);
  const shared = (candidate: string) => [...camelWords(simpleName(candidate))].filter((w) => words.has(w)).length;
  const package_ = type.slice(0, type.length - name.length);
  return known
    .filter((candidate) => candidate.startsWith(package_) && shared(candidate) >= 2)
    .reduce<string | undefined>(
      (best, candidate) => (!best || shared(candidate) > shared(best) ? candidate : best),
      undefined,
    );
}

/** Why a filter's event type names nothing a topic carries, with the closest known one. */
function unknownEventType(type: string): string {
  const closest = closestEventType(type);
  return closest
    ? `no topic carries ${type}; did you mean ${closest}?`
    : `no topic carries ${type} (event types are e.g. rdm.deployment.v1.DeploymentFailed)`;
}

/**
 * Refuses, each naming its field, a target URL no delivery could reach and event types no topic
 * carries (a filter naming one would never match it).
 */
function requireDeliverable(target: Target | undefined, filter: api.CreateSubscriptionRequest["filter"]) {
  const url = target?.kind.case && undeliverable(target.kind.value.url);
  const violations = [
    ...(url
      ? [{ field: `target.${target.kind.case}.url`, description: url, reason: "subscription.target_unreachable" }]
      : []),
    ...(filter?.eventTypes ?? []).flatMap((type, i) =>
      EVENT_TYPES.has(type)
        ? []
        : [
            {
              field: `filter.event_types[${i}]`,
              description: unknownEventType(type),
              reason: "subscription.event_type_unknown",
            },
          ],
    ),
  ];
  if (violations.length) throw new InvalidArgument(violations);
}

/**
 * The settings the events carry, and the secret they must not: the webhook's, or the chat URL.
 * Shared by create and update, which take the same settings.
 */
function subscriptionSettings(
  request: {
    name: string;
    target?: Target | undefined;
    filter?: api.CreateSubscriptionRequest["filter"];
    secret: string;
  },
  owner: string,
) {
  requireDeliverable(request.target, request.filter);
  const { target, secret } = withoutSecrets(request.target as Target, request.secret);
  return {
    command: {
      name: request.name,
      owner,
      target,
      filter: request.filter,
      secretFingerprint: secretFingerprint(secret),
    },
    secret: secret || undefined,
  };
}

/** The RPCs that change a subscription, through the command handler. */
function subscriptionCommandHandlers({ handler }: NotificationApiDeps) {
  /** A subscription command through the command handler; every command RPC answers `{ subscription }`. */
  const execute = <K extends keyof Methods>(
    key: K,
    request: { requestId: string } & Parameters<typeof requestFingerprint>[1],
    ctx: CallContext,
    subscriptionId: string,
    command: SubscriptionCommand,
    secret?: string,
  ) => {
    const output = method[key].output as DescMessage;
    return handler.handle(
      {
        actor: ctx.principal.subject,
        groups: ctx.principal.groups,
        requestId: request.requestId,
        traceparent: ctx.traceparent,
      },
      {
        ...subscriptionCommand(subscriptionId, command, secret),
        response: output,
        respond: ({ after }) => create(output, { subscription: after.subscription }),
        requestHash: requestFingerprint(method[key].input as DescMessage, request, ctx.principal.subject),
      },
    ) as never;
  };

  return {
    createSubscription(request, ctx) {
      // The id derives from the request id, so a retried create addresses the same stream.
      const subscriptionId = request.requestId;
      const owner = request.owner || ctx.principal.subject;
      const { command: fields, secret } = subscriptionSettings(request, owner);
      const command = { kind: "createSubscription", subscriptionId, fromConfiguration: false, ...fields } as const;
      return execute("createSubscription", request, ctx, subscriptionId, command, secret);
    },
    updateSubscription(request, ctx) {
      const { command, secret } = subscriptionSettings(request, request.owner);
      const update = { kind: "updateSubscription", ...command } as const;
      return execute("updateSubscription", request, ctx, request.subscriptionId, update, secret);
    },
    pauseSubscription: (request, ctx) =>
      execute("pauseSubscription", request, ctx, request.subscriptionId, {
        kind: "pauseSubscription",
        reason: request.reason,
      }),
    resumeSubscription: (request, ctx) =>
      execute("resumeSubscription", request, ctx, request.subscriptionId, {
        kind: "resumeSubscription",
        deliverMissed: request.deliverMissed,
      }),
    deleteSubscription: (request, ctx) =>
      execute("deleteSubscription", request, ctx, request.subscriptionId, { kind: "deleteSubscription" }),
  } satisfies Partial<Handlers>;
}

/** The RPCs that read subscriptions and their deliveries, and the test send. */
function subscriptionQueryHandlers(deps: NotificationApiDeps) {
  const { pool, clock } = deps;
  async function getOne(subscriptionId: string): Promise<Subscription> {
    const [found] = await listSubscriptions(pool, { subscriptionId });
    if (!found) throw new NotFound("subscription", subscriptionId);
    return found;
  }

  return {
    async getSubscription(request) {
      return create(api.GetSubscriptionResponseSchema, { subscription: await getOne(request.subscriptionId) });
    },
    async listSubscriptions(request) {
      const subscriptions = await listSubscriptions(pool, { owner: request.owner, status: request.status });
      return create(api.ListSubscriptionsResponseSchema, { subscriptions });
    },
    async listSubscriptionDeliveries(request) {
      const scope = pageTokenScope("release.ListSubscriptionDeliveries", request);
      const after = pageCursor(request.pageToken, scope, isIsoTimestamp, isUuid);
      await getOne(request.subscriptionId);
      const pageSize = request.pageSize || 100;
      const { rows } = await pool.query(
        `SELECT delivery_id, event_id, event_type, status, attempts, last_error, occurred_at, delivered_at
           FROM subscription_deliveries
          WHERE subscription_id = $1 AND ($3::timestamptz IS NULL OR (occurred_at, delivery_id) < ($3, $4::uuid))
          ORDER BY occurred_at DESC, delivery_id DESC LIMIT $2`,
        [request.subscriptionId, pageSize + 1, after?.[0] ?? null, after?.[1] ?? null],
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return create(api.ListSubscriptionDeliveriesResponseSchema, {
        nextPageToken:
          rows.length > pageSize && last
            ? encodePageToken(scope, last.occurred_at.toISOString(), last.delivery_id)
            : "",
        deliveries: page.map((r) => ({
          deliveryId: r.delivery_id,
          eventId: r.event_id,
          eventType: r.event_type,
          status: STATUS_NAMES.indexOf(r.status) + 1,
          attempts: r.attempts,
          lastError: r.last_error,
          occurredAt: timestampFromDate(r.occurred_at),
          ...(r.delivered_at ? { deliveredAt: timestampFromDate(r.delivered_at) } : {}),
        })),
      });
    },
    async testSubscription(request) {
      // A deleted one is read still, but its target no longer hears from the platform.
      const subscription = requireLive({ subscription: await getOne(request.subscriptionId) });
      const { rows } = await pool.query<{ secret: string }>(
        "SELECT secret FROM notification_subscription_secrets WHERE subscription_id = $1",
        [request.subscriptionId],
      );
      const payload = {
        ...samplePayload(subscription.subscriptionId, request.requestId, clock(), deps.linkBaseUrl),
        test: true,
      };
      const { status, failure } = await sendToTarget(subscription, rows[0]?.secret, payload, clock(), deps.timeoutMs);
      return create(api.TestSubscriptionResponseSchema, {
        delivered: !failure,
        httpStatus: status,
        error: failure ?? "",
      });
    },
  } satisfies Partial<Handlers>;
}

export function notificationServiceHandlers(deps: NotificationApiDeps): ServiceRegistration<Methods> {
  return {
    service: api.NotificationService,
    roles: notificationServiceRoles,
    handlers: { ...subscriptionCommandHandlers(deps), ...subscriptionQueryHandlers(deps) },
  };
}

/** A made-up phase change, in the shape of every delivery (its ids are new, not of a real release). */
function samplePayload(subscriptionId: string, notificationId: string, now: Date, linkBaseUrl: string) {
  const releaseId = randomUUID();
  const event = create(ReleasePhaseAdvancedSchema, {
    releaseId,
    fromPhase: ReleasePhase.PLANNING,
    toPhase: ReleasePhase.APPROVAL,
  });
  return notificationPayload({
    notificationId,
    subscriptionId,
    eventId: randomUUID(),
    eventType: event.$typeName,
    source: "rdm/release",
    subject: releaseId,
    occurredAt: now,
    json: eventJson(ReleasePhaseAdvancedSchema, event),
    releaseKey: "REL-0000-0000",
    linkBaseUrl,
  });
}
