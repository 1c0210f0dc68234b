import { randomUUID } from "node:crypto";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Role } from "@rdm/auth";
import type { EventStore } from "@rdm/eventstore";
import {
  AlreadyExists,
  type CallContext,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  requestFingerprint,
  type ServiceRegistration,
} from "@rdm/grpc";
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
  ReleaseRuleViolation,
  type ReleaseState,
  releaseKey,
} from "../domain/release.js";
import type { ReleaseModelStore } from "../store/model-store.js";
import type { ReleaseRepository } from "../store/release-repository.js";
import { decodeEvent } from "./event-codec.js";

export interface ReleaseApiDeps {
  store: EventStore;
  pool: pg.Pool;
  repository: ReleaseRepository;
  models: ReleaseModelStore;
  clock: () => Date;
}

const READERS: Role[] = [
  "viewer",
  "release-manager",
  "release-coordinator",
  "approver",
  "change-manager",
  "deployer",
  "config-manager",
];
const MANAGER: Role[] = ["release-manager"];
const PLANNERS: Role[] = ["release-manager", "release-coordinator"];
const WORKERS: Role[] = ["release-manager", "release-coordinator", "deployer"];

/** Who may call each RPC (admin always may); the gRPC server refuses anyone else before the handler. */
export const releaseServiceRoles: { [K in keyof (typeof api.ReleaseService)["method"]]: readonly Role[] } = {
  registerRelease: MANAGER,
  getRelease: READERS,
  listReleases: READERS,
  getReleaseHistory: READERS,
  getReleaseGate: READERS,
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
  getReleaseModel: READERS,
  listReleaseModels: READERS,
  listNotificationDeliveries: READERS,
};

/** Server-side re-decisions when another command appended to the same release meanwhile. */
const MAX_ATTEMPTS = 5;

async function nextReleaseKey(pool: pg.Pool, year: number): Promise<string> {
  const { rows } = await pool.query<{ last: number }>(
    `INSERT INTO release_keys (year, last) VALUES ($1, 1)
     ON CONFLICT (year) DO UPDATE SET last = release_keys.last + 1 RETURNING last`,
    [year],
  );
  return releaseKey(year, rows[0]?.last ?? 1);
}

export function toApiError(error: unknown): unknown {
  if (!(error instanceof ReleaseRuleViolation)) return error;
  switch (error.code) {
    case "ALREADY_EXISTS":
      return new AlreadyExists(error.message);
    case "NOT_FOUND":
      return new NotFound("release", error.message, error.message);
    case "PERMISSION_DENIED":
      return new PermissionDenied(error.message, error.rule.toUpperCase().replaceAll(".", "_"), {
        rule: error.rule,
        subject: error.subject,
      });
    default:
      return new FailedPrecondition(
        error.message,
        error.unmet.length
          ? error.unmet.map((c) => ({ type: c.rule, subject: c.subject, description: c.description }))
          : [{ type: error.rule, subject: error.subject, description: error.message }],
      );
  }
}

export async function loadChangeStates(pool: pg.Pool, release: Release | undefined): Promise<LinkedChangeState[]> {
  const ids = release?.linkedChangeRequestIds ?? [];
  if (!ids.length) return [];
  const { rows } = await pool.query<{ change_request_id: string; state: string }>(
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
  repository,
  models,
  clock,
}: ReleaseApiDeps): ServiceRegistration<(typeof api.ReleaseService)["method"]> {
  const method = api.ReleaseService.method;
  /** A retried request id returns the first response; reusing it for another request is refused. */
  async function replay<O extends DescMessage>(
    requestId: string,
    requestHash: string,
    output: O,
  ): Promise<MessageShape<O> | undefined> {
    const previous = await store.getCommandResult(requestId);
    if (!previous?.response) return undefined;
    if (previous.requestHash !== requestHash) {
      throw new FailedPrecondition("request_id was already used for a different request", [
        { type: "request.idempotency", subject: requestId, description: "request_id reused with a different payload" },
      ]);
    }
    return fromBinary(output, previous.response);
  }

  /**
   * Load, decide, append; on a concurrent append to the same release, decide again on the fresh
   * state (the command may now be refused, e.g. a second vote after the quorum). Every response
   * of a release command is `{ release }`, so the stored response decodes as any of them.
   */
  async function execute<O extends DescMessage>(
    name: string,
    input: DescMessage,
    request: CommandRequest & MessageShape<DescMessage>,
    output: O,
    ctx: CallContext,
    toCommand: (state: ReleaseState) => ReleaseCommand | Promise<ReleaseCommand>,
    releaseId = request.releaseId,
  ): Promise<MessageShape<O>> {
    const requestHash = requestFingerprint(input, request);
    for (let attempt = 1; ; attempt++) {
      // State first, then the request id: a retry racing the first attempt either sees its
      // recorded answer here, or the first attempt had not committed when the state was read
      // (the answer commits with the events). The other order decides the retry on a state that
      // already holds the first attempt's effect, and refuses it.
      const loaded = await repository.load(releaseId);
      const replayed = await replay(request.requestId, requestHash, output);
      if (replayed) return replayed;
      if (!loaded.state.release && name !== "registerRelease") throw new NotFound("release", releaseId);
      try {
        const { state } = await repository.decideAndAppend(
          releaseId,
          loaded,
          await toCommand(loaded.state),
          {
            actor: ctx.principal.subject,
            groups: ctx.principal.groups,
            now: clock(),
            requestId: request.requestId,
            traceparent: ctx.traceparent,
          },
          {
            idempotency: {
              requestHash,
              response: (s) =>
                toBinary(api.GetReleaseResponseSchema, create(api.GetReleaseResponseSchema, { release: s.release })),
            },
          },
        );
        return create(output, { release: state.release } as never);
      } catch (error) {
        const name = (error as Error).name;
        if (name === "DuplicateRequest") {
          const winner = await replay(request.requestId, requestHash, output);
          if (winner) return winner;
        }
        if (name === "WrongExpectedVersion" && attempt < MAX_ATTEMPTS) continue;
        throw toApiError(error);
      }
    }
  }

  /** A handler for a release command RPC; every such RPC answers `{ release }`. */
  const cmd = <K extends keyof typeof method>(
    key: K,
    // biome-ignore lint/suspicious/noExplicitAny: each call site types its own request
    toCommand: (request: any, state: ReleaseState) => ReleaseCommand | Promise<ReleaseCommand>,
  ): never =>
    ((request: CommandRequest & MessageShape<DescMessage>, ctx: CallContext) =>
      execute(key, method[key].input, request, method[key].output, ctx, (state) => toCommand(request, state))) as never;

  return {
    service: api.ReleaseService,
    roles: releaseServiceRoles,
    handlers: {
      async registerRelease(request, ctx) {
        const requestHash = requestFingerprint(method.registerRelease.input, request);
        const replayed = await replay(request.requestId, requestHash, method.registerRelease.output);
        if (replayed) return replayed;
        const modelName = request.modelName || defaultModelName(request.type);
        const model = await models.get(modelName, request.modelVersion);
        if (!model)
          throw new NotFound("release model", `${modelName}${request.modelVersion ? ` v${request.modelVersion}` : ""}`);
        const key = await nextReleaseKey(pool, clock().getUTCFullYear());
        const releaseId = randomUUID();
        return execute(
          "registerRelease",
          method.registerRelease.input,
          { ...request, releaseId } as never,
          method.registerRelease.output,
          ctx,
          () => ({
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
          }),
        );
      },

      async getRelease(request) {
        const { state } = await repository.load(request.releaseId);
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
            const event = decodeEvent(r) as { reason?: unknown; metadata?: { occurredAt?: Timestamp } };
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
        const { state } = await repository.load(request.releaseId);
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
      advanceReleasePhase: cmd("advanceReleasePhase", async (r: api.AdvanceReleasePhaseRequest, state) => ({
        kind: "advancePhase",
        fromPhase: r.fromPhase,
        changes: await loadChangeStates(pool, state.release),
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
      closeRelease: cmd("closeRelease", async (_r: api.CloseReleaseRequest, state) => ({
        kind: "closeRelease",
        changes: await loadChangeStates(pool, state.release),
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
        const requestHash = requestFingerprint(method.createReleaseModel.input, request);
        const replayed = await replay(request.requestId, requestHash, method.createReleaseModel.output);
        if (replayed) return replayed;
        const model = await models
          .create(request.model as ReleaseModel, {
            actor: ctx.principal.subject,
            now: clock(),
            requestId: request.requestId,
            requestHash,
            traceparent: ctx.traceparent,
            response: (created) =>
              toBinary(
                api.CreateReleaseModelResponseSchema,
                create(api.CreateReleaseModelResponseSchema, { model: created }),
              ),
          })
          .catch(async (error: Error) => {
            if (error.name === "DuplicateRequest") {
              const winner = await replay(request.requestId, requestHash, method.createReleaseModel.output);
              if (winner) return winner.model as ReleaseModel;
            }
            throw error;
          });
        return create(api.CreateReleaseModelResponseSchema, { model });
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
