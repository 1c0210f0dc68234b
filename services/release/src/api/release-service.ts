import { randomUUID } from "node:crypto";
import { create, type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { READER_ROLES, type Role } from "@rdm/auth";
import { type CommandHandler, type CommandOrigin, RuleViolation } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import { type CallContext, InvalidArgument, NotFound, requestFingerprint, type ServiceRegistration } from "@rdm/grpc";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { type Release, ReleasePhase, ReleaseSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { decodePageToken, encodePageToken, isIsoTimestamp, isUuid } from "@rdm/runtime";
import type pg from "pg";
import { defaultModelName } from "../domain/models.js";
import {
  gateConditions,
  type LinkedChangeState,
  nextPhase,
  type ReleaseCommand,
  type ReleaseState,
  releaseKey,
} from "../domain/release.js";
import { decodeReleaseEvent, type ReleaseServiceEvent } from "../store/event-codec.js";
import { createModelVersion, type ReleaseModelStore } from "../store/model-store.js";
import { readRelease, releaseCommand } from "../store/releases.js";

export interface ReleaseApiDeps {
  store: EventStore;
  pool: pg.Pool;
  handler: CommandHandler<ReleaseServiceEvent>;
  models: ReleaseModelStore;
  clock: () => Date;
}

const MANAGER: Role[] = ["release-manager"];
const PLANNERS: Role[] = ["release-manager", "release-coordinator"];
const WORKERS: Role[] = ["release-manager", "release-coordinator", "deployer"];

/** Who may call each RPC (admin always may); the gRPC server refuses anyone else before the handler. */
export const releaseServiceRoles: { [K in keyof (typeof api.ReleaseService)["method"]]: readonly Role[] } = {
  registerRelease: MANAGER,
  getRelease: READER_ROLES,
  listReleases: READER_ROLES,
  getReleaseHistory: READER_ROLES,
  getReleaseGate: READER_ROLES,
  updateReleasePlanning: PLANNERS,
  advanceReleasePhase: PLANNERS,
  reworkRelease: MANAGER,
  abandonRelease: MANAGER,
  closeRelease: MANAGER,
  requestReleaseApproval: PLANNERS,
  approveRelease: ["approver"],
  rejectRelease: ["approver"],
  addReleaseTask: PLANNERS,
  assignReleaseTask: PLANNERS,
  startReleaseTask: WORKERS,
  completeReleaseTask: WORKERS,
  cancelReleaseTask: PLANNERS,
  linkChangeRequest: [...PLANNERS, "change-manager"],
  unlinkChangeRequest: [...PLANNERS, "change-manager"],
  attachReleaseArtifact: [...WORKERS, "config-manager"],
  detachReleaseArtifact: [...WORKERS, "config-manager"],
  setBackOutPlan: PLANNERS,
  recordReleaseLogEntry: [...WORKERS, "approver", "change-manager"],
  recordPostImplementationReview: PLANNERS,
  createReleaseModel: MANAGER,
  getReleaseModel: READER_ROLES,
  listReleaseModels: READER_ROLES,
  listNotificationDeliveries: READER_ROLES,
};

async function nextReleaseKey(pool: pg.Pool, year: number): Promise<string> {
  const { rows } = await pool.query<{ last: number }>(
    `INSERT INTO release_keys (year, last) VALUES ($1, 1)
     ON CONFLICT (year) DO UPDATE SET last = release_keys.last + 1 RETURNING last`,
    [year],
  );
  return releaseKey(year, rows[0]?.last ?? 1);
}

export async function loadChangeStates(
  db: Pick<pg.Pool, "query">,
  release: Release | undefined,
): Promise<LinkedChangeState[]> {
  const ids = release?.linkedChangeRequestIds ?? [];
  if (!ids.length) return [];
  const { rows } = await db.query<{ change_request_id: string; state: string }>(
    "SELECT change_request_id, state FROM change_request_states WHERE change_request_id = ANY($1)",
    [ids],
  );
  const known = new Map(rows.map((r) => [r.change_request_id, r.state]));
  return ids.map((id) => ({ changeRequestId: id, state: known.get(id) }));
}

/** ListReleases' page token over (registered_at, release_id); a forged one is INVALID_ARGUMENT. */
function decodeCursor(token: string): [string, string] {
  const cursor = decodePageToken(token, isIsoTimestamp, isUuid);
  if (cursor) return cursor;
  throw new InvalidArgument([{ field: "page_token", description: "page_token is not valid", reason: "page_token" }]);
}

/** One mutating request: its id, the release it addresses, and the command it becomes. */
interface CommandRequest {
  requestId: string;
  releaseId: string;
}

export function releaseServiceHandlers({
  store,
  pool,
  handler,
  models,
  clock,
}: ReleaseApiDeps): ServiceRegistration<(typeof api.ReleaseService)["method"]> {
  const method = api.ReleaseService.method;
  const originOf = (request: { requestId: string }, ctx: CallContext): CommandOrigin => ({
    actor: ctx.principal.subject,
    groups: ctx.principal.groups,
    requestId: request.requestId,
    traceparent: ctx.traceparent,
  });

  /**
   * A release command through the command handler (request id, re-decision on a concurrent
   * append, see @rdm/command-handler). Every response of a release command is `{ release }`.
   */
  function execute<K extends keyof typeof method>(
    key: K,
    request: CommandRequest & MessageShape<DescMessage>,
    ctx: CallContext,
    toCommand: (state: ReleaseState, tx: pg.PoolClient) => ReleaseCommand | Promise<ReleaseCommand>,
  ): Promise<MessageShape<(typeof method)[K]["output"]>> {
    const output = method[key].output as DescMessage;
    return handler.handle(originOf(request, ctx), {
      ...releaseCommand(request.releaseId, (state, tx) => {
        if (!state.release && key !== "registerRelease")
          throw new RuleViolation("NOT_FOUND", "release.exists", `release ${request.releaseId} not found`, {
            subject: request.releaseId,
          });
        return toCommand(state, tx);
      }),
      response: output,
      respond: ({ after }) => create(output, { release: after.release }),
      requestHash: requestFingerprint(method[key].input as DescMessage, request),
    }) as Promise<MessageShape<(typeof method)[K]["output"]>>;
  }

  /** A handler for a release command RPC; every such RPC answers `{ release }`. */
  const cmd = <K extends keyof typeof method>(
    key: K,
    // biome-ignore lint/suspicious/noExplicitAny: each call site types its own request
    toCommand: (request: any, state: ReleaseState, tx: pg.PoolClient) => ReleaseCommand | Promise<ReleaseCommand>,
  ): never =>
    ((request: CommandRequest & MessageShape<DescMessage>, ctx: CallContext) =>
      execute(key, request, ctx, (state, tx) => toCommand(request, state, tx))) as never;

  return {
    service: api.ReleaseService,
    roles: releaseServiceRoles,
    handlers: {
      async registerRelease(request, ctx) {
        // A retry is answered before a model is looked up and a key taken.
        const replayed = await handler.replay(request.requestId, {
          response: method.registerRelease.output,
          requestHash: requestFingerprint(method.registerRelease.input, request),
        });
        if (replayed) return replayed;
        const modelName = request.modelName || defaultModelName(request.type);
        const model = await models.get(modelName, request.modelVersion);
        if (!model)
          throw new NotFound("release model", `${modelName}${request.modelVersion ? ` v${request.modelVersion}` : ""}`);
        const key = await nextReleaseKey(pool, clock().getUTCFullYear());
        const releaseId = randomUUID();
        return execute("registerRelease", { ...request, releaseId }, ctx, () => ({
          kind: "registerRelease",
          releaseId,
          key,
          title: request.title,
          description: request.description,
          type: request.type,
          category: request.category,
          owner: request.owner,
          coordinator: request.coordinator,
          stakeholders: request.stakeholders,
          risk: request.risk,
          plannedWindow: request.plannedWindow,
          model,
        }));
      },

      async getRelease(request) {
        const state = await readRelease(store, request.releaseId);
        if (!state.release) throw new NotFound("release", request.releaseId);
        return create(api.GetReleaseResponseSchema, { release: state.release });
      },

      async listReleases(request) {
        const pageSize = request.pageSize || 50;
        const where: string[] = [];
        const args: unknown[] = [];
        const add = (sql: string, ...values: unknown[]) => {
          args.push(...values);
          where.push(sql.replace(/\$(\d)/g, (_, n) => `$${args.length - values.length + Number(n)}`));
        };
        if (request.pageToken) {
          const [at, id] = decodeCursor(request.pageToken);
          add("(registered_at, release_id) < ($1::timestamptz, $2::uuid)", at, id);
        }
        if (request.phase) add("phase = $1", request.phase);
        if (request.type) add("type = $1", request.type);
        if (request.owner) add("owner = $1", request.owner);
        if (request.status) add("status = $1", request.status);
        if (request.overdueOnly) add("phase_due_at < $1", clock());
        if (request.text) add("(key ILIKE $1 OR title ILIKE $1)", `%${request.text.replace(/[%_\\]/g, "\\$&")}%`);
        args.push(pageSize + 1);
        const { rows } = await pool.query<{ release_id: string; registered_at: Date; snapshot: Buffer }>(
          `SELECT release_id, registered_at, snapshot FROM release_index ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
           ORDER BY registered_at DESC, release_id DESC LIMIT $${args.length}`,
          args,
        );
        const page = rows.slice(0, pageSize);
        const last = page[page.length - 1];
        return create(api.ListReleasesResponseSchema, {
          releases: page.map((r) => fromBinary(ReleaseSchema, new Uint8Array(r.snapshot))),
          nextPageToken:
            rows.length > pageSize && last ? encodePageToken(last.registered_at.toISOString(), last.release_id) : "",
        });
      },

      async getReleaseHistory(request) {
        const recorded = await store.readStream(request.releaseId);
        if (!recorded.length) throw new NotFound("release", request.releaseId);
        return create(api.GetReleaseHistoryResponseSchema, {
          entries: recorded.map((r) => {
            const event = decodeReleaseEvent(r) as { reason?: unknown; metadata?: { occurredAt?: Timestamp } };
            return {
              eventType: r.type,
              // When it happened in the domain (the service clock), as the gateway's history shows it.
              occurredAt: event.metadata?.occurredAt ?? timestampFromDate(r.recordedAt),
              actor: String(r.metadata.actor ?? ""),
              reason: typeof event.reason === "string" ? event.reason : "",
              version: BigInt(r.version),
              requestId: String(r.metadata.requestId ?? ""),
              summary: r.type.replace(/^rdm\.release\.v1\./, ""),
              eventId: r.eventId,
              correlationId: String(r.metadata.correlationId ?? ""),
              causationId: String(r.metadata.causationId ?? ""),
            };
          }),
        });
      },

      async getReleaseGate(request) {
        const state = await readRelease(store, request.releaseId);
        const { release, model } = state;
        if (!release || !model) throw new NotFound("release", request.releaseId);
        const conditions = gateConditions(state, await loadChangeStates(pool, release));
        return create(api.GetReleaseGateResponseSchema, {
          phase: release.phase,
          nextPhase: nextPhase(model, release.phase) ?? ReleasePhase.UNSPECIFIED,
          conditions,
          open: conditions.every((c) => c.met),
        });
      },

      updateReleasePlanning: cmd("updateReleasePlanning", (r: api.UpdateReleasePlanningRequest) => ({
        kind: "updatePlanning",
        title: r.title,
        description: r.description,
        category: r.category,
        coordinator: r.coordinator,
        stakeholders: r.stakeholders,
        risk: r.risk,
        plannedWindow: r.plannedWindow,
      })),
      advanceReleasePhase: cmd("advanceReleasePhase", async (r: api.AdvanceReleasePhaseRequest, state, tx) => ({
        kind: "advancePhase",
        fromPhase: r.fromPhase,
        changes: await loadChangeStates(tx, state.release),
      })),
      reworkRelease: cmd("reworkRelease", (r: api.ReworkReleaseRequest) => ({
        kind: "reworkRelease",
        toPhase: r.toPhase,
        reason: r.reason,
      })),
      abandonRelease: cmd("abandonRelease", (r: api.AbandonReleaseRequest) => ({
        kind: "abandonRelease",
        reason: r.reason,
      })),
      closeRelease: cmd("closeRelease", async (_r: api.CloseReleaseRequest, state, tx) => ({
        kind: "closeRelease",
        changes: await loadChangeStates(tx, state.release),
      })),
      requestReleaseApproval: cmd("requestReleaseApproval", (r: api.RequestReleaseApprovalRequest) => ({
        kind: "requestApproval",
        approvalId: randomUUID(),
        approverGroup: r.approverGroup,
      })),
      approveRelease: cmd("approveRelease", (r: api.ApproveReleaseRequest) => ({
        kind: "approveRelease",
        approvalId: r.approvalId,
        comment: r.comment,
      })),
      rejectRelease: cmd("rejectRelease", (r: api.RejectReleaseRequest) => ({
        kind: "rejectRelease",
        approvalId: r.approvalId,
        reason: r.reason,
      })),
      addReleaseTask: cmd("addReleaseTask", (r: api.AddReleaseTaskRequest) => ({
        kind: "addTask",
        taskId: randomUUID(),
        name: r.name,
        required: r.required,
        assignee: r.assignee,
        dueAt: r.dueAt ? timestampDate(r.dueAt) : undefined,
      })),
      assignReleaseTask: cmd("assignReleaseTask", (r: api.AssignReleaseTaskRequest) => ({
        kind: "assignTask",
        taskId: r.taskId,
        assignee: r.assignee,
      })),
      startReleaseTask: cmd("startReleaseTask", (r: api.StartReleaseTaskRequest) => ({
        kind: "startTask",
        taskId: r.taskId,
      })),
      completeReleaseTask: cmd("completeReleaseTask", (r: api.CompleteReleaseTaskRequest) => ({
        kind: "completeTask",
        taskId: r.taskId,
      })),
      cancelReleaseTask: cmd("cancelReleaseTask", (r: api.CancelReleaseTaskRequest) => ({
        kind: "cancelTask",
        taskId: r.taskId,
        reason: r.reason,
      })),
      linkChangeRequest: cmd("linkChangeRequest", (r: api.LinkChangeRequestRequest) => ({
        kind: "linkChangeRequest",
        changeRequestId: r.changeRequestId,
      })),
      unlinkChangeRequest: cmd("unlinkChangeRequest", (r: api.UnlinkChangeRequestRequest) => ({
        kind: "unlinkChangeRequest",
        changeRequestId: r.changeRequestId,
      })),
      attachReleaseArtifact: cmd("attachReleaseArtifact", (r: api.AttachReleaseArtifactRequest) => ({
        kind: "attachArtifact",
        artifact: {
          artifactId: r.artifactId,
          name: r.name,
          version: r.version,
          sha256: r.sha256,
          configurationItemId: r.configurationItemId,
        },
      })),
      detachReleaseArtifact: cmd("detachReleaseArtifact", (r: api.DetachReleaseArtifactRequest) => ({
        kind: "detachArtifact",
        artifactId: r.artifactId,
      })),
      setBackOutPlan: cmd("setBackOutPlan", (r: api.SetBackOutPlanRequest) => ({
        kind: "setBackOutPlan",
        backOutPlan: r.backOutPlan,
      })),
      recordReleaseLogEntry: cmd("recordReleaseLogEntry", (r: api.RecordReleaseLogEntryRequest) => ({
        kind: "recordLogEntry",
        entryId: randomUUID(),
        entryKind: r.kind,
        text: r.text,
      })),
      recordPostImplementationReview: cmd(
        "recordPostImplementationReview",
        (r: api.RecordPostImplementationReviewRequest) => ({
          kind: "recordReview",
          outcome: r.outcome,
          lessonsLearned: r.lessonsLearned,
          followUpActions: r.followUpActions,
        }),
      ),

      async createReleaseModel(request, ctx) {
        return handler.handle(originOf(request, ctx), {
          ...createModelVersion(request.model as ReleaseModel),
          response: api.CreateReleaseModelResponseSchema,
          respond: ({ events }) => create(api.CreateReleaseModelResponseSchema, { model: events[0]?.model }),
          requestHash: requestFingerprint(method.createReleaseModel.input, request),
        });
      },

      async getReleaseModel(request) {
        const model = await models.get(request.name, request.version);
        if (!model)
          throw new NotFound("release model", `${request.name}${request.version ? ` v${request.version}` : ""}`);
        return create(api.GetReleaseModelResponseSchema, { model });
      },

      async listReleaseModels() {
        return create(api.ListReleaseModelsResponseSchema, { models: await models.listLatest() });
      },

      async listNotificationDeliveries(request) {
        const { rows } = await pool.query<{
          notification_id: string;
          trigger: string;
          recipients: string[];
          status: string;
          attempts: number;
          last_error: string;
          delivered_at: Date | null;
        }>(
          `SELECT notification_id, trigger, recipients, status, attempts, last_error, delivered_at
           FROM notification_deliveries WHERE release_id = $1 ORDER BY created_at, notification_id`,
          [request.releaseId],
        );
        return create(api.ListNotificationDeliveriesResponseSchema, {
          deliveries: rows.map((r) => ({
            notificationId: r.notification_id,
            trigger: r.trigger,
            recipients: r.recipients,
            status: r.status,
            attempts: r.attempts,
            lastError: r.last_error,
            ...(r.delivered_at ? { deliveredAt: timestampFromDate(r.delivered_at) } : {}),
          })),
        });
      },
    },
  };
}
