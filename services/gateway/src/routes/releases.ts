import type { ServerResponse } from "node:http";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  ApprovalStatusSchema,
  LogEntryKindSchema,
  type Release,
  ReleasePhaseSchema,
  ReleaseSchema,
  ReviewOutcomeSchema,
  TaskStatusSchema,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { gateConditions, type LinkedChangeState, nextPhase } from "@rdm/release/domain";
import { decodePageToken, encodePageToken, isIsoTimestamp, isUuid } from "@rdm/runtime";
import type { FastifyInstance, FastifyReply } from "fastify";
import type pg from "pg";
import type { NotificationHub } from "../notification-hub.js";
import { enumName } from "../projections/releases.js";
import { deploymentSchema, deploymentsOfRelease } from "./deployments.js";
import { badRequest, equalityFilters, notFound, problemSchema, uuidSchema } from "./http.js";

const obj = (properties: Record<string, unknown>) => ({ type: "object", properties }) as const;
const str = { type: "string" } as const;
const nullableDate = { type: ["string", "null"], format: "date-time" } as const;
const arr = (items: unknown) => ({ type: "array", items }) as const;

const gateSchema = obj({
  phase: str,
  nextPhase: { type: ["string", "null"] },
  open: { type: "boolean" },
  conditions: arr(obj({ rule: str, subject: str, description: str, met: { type: "boolean" } })),
});

const releaseSchema = {
  type: "object",
  properties: {
    releaseId: { type: "string", format: "uuid" },
    key: { type: "string", examples: ["REL-2026-0042"] },
    title: { type: "string" },
    description: { type: "string" },
    type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
    category: { type: "string" },
    owner: { type: "string" },
    coordinator: { type: "string" },
    stakeholders: { type: "array", items: { type: "string" } },
    risk: { type: "string", enum: ["UNSPECIFIED", "LOW", "MEDIUM", "HIGH", "CRITICAL"] },
    plannedWindow: {
      type: ["object", "null"],
      properties: {
        start: { type: ["string", "null"], format: "date-time" },
        end: { type: ["string", "null"], format: "date-time" },
      },
    },
    phase: { type: "string" },
    registeredBy: { type: "string" },
    registeredAt: { type: "string", format: "date-time" },
    version: { type: "integer" },
    updatedAt: { type: "string", format: "date-time" },
    status: { type: "string", enum: ["ACTIVE", "ABANDONED", "CLOSED"] },
    abandonReason: str,
    modelName: str,
    modelVersion: { type: "integer" },
    phaseEntry: { type: "integer" },
    phaseEnteredAt: nullableDate,
    phaseDueAt: nullableDate,
    overdue: { type: "boolean", description: "the current phase's deadline has passed" },
    gate: gateSchema,
    approvals: arr(
      obj({
        approvalId: str,
        phase: str,
        phaseEntry: { type: "integer" },
        approverGroup: str,
        quorum: { type: "integer" },
        requestedBy: str,
        requestedAt: nullableDate,
        status: str,
        votes: arr(obj({ approver: str, approved: { type: "boolean" }, comment: str, at: nullableDate })),
      }),
    ),
    tasks: arr(
      obj({
        taskId: str,
        phase: str,
        phaseEntry: { type: "integer" },
        name: str,
        required: { type: "boolean" },
        fromModel: { type: "boolean" },
        assignee: str,
        status: str,
        dueAt: nullableDate,
      }),
    ),
    package: arr(obj({ artifactId: str, name: str, version: str, sha256: str, configurationItemId: str })),
    packageFrozen: { type: "boolean" },
    linkedChangeRequests: arr(obj({ changeRequestId: str, state: { type: ["string", "null"] } })),
    deadlineMisses: arr(
      obj({ phase: str, phaseEntry: { type: "integer" }, dueAt: nullableDate, escalated: { type: "boolean" } }),
    ),
    backOutPlan: str,
    log: arr(obj({ entryId: str, kind: str, text: str, recordedBy: str, recordedAt: nullableDate })),
    review: {
      type: ["object", "null"],
      properties: {
        outcome: str,
        lessonsLearned: str,
        followUpActions: arr(str),
        reviewedBy: str,
        reviewedAt: nullableDate,
      },
    },
  },
} as const;

const historySchema = obj({
  seq: { type: "integer" },
  releaseId: str,
  version: { type: "integer" },
  eventType: str,
  occurredAt: { type: "string", format: "date-time" },
  actor: str,
  reason: str,
  phase: str,
  eventId: str,
  correlationId: { ...str, description: "shared by every event one user action caused" },
  causationId: { ...str, description: "the command (request id) or event that caused this one" },
  requestId: str,
});

interface ReleaseRow {
  release_id: string;
  key: string;
  title: string;
  description: string;
  type: string;
  category: string;
  owner: string;
  coordinator: string;
  stakeholders: string[];
  risk: string;
  planned_start: Date | null;
  planned_end: Date | null;
  phase: string;
  registered_by: string;
  registered_at: Date;
  version: string;
  updated_at: Date;
  status: string;
  phase_due_at: Date | null;
  snapshot: JsonValue | null;
  model: JsonValue | null;
}

interface HistoryRow {
  seq: string;
  release_id: string;
  version: string;
  event_type: string;
  occurred_at: Date;
  actor: string;
  reason: string;
  phase: string;
  event_id: string;
  correlation_id: string;
  causation_id: string;
  request_id: string;
}

const date = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : null);
const phaseName = (p: number) => enumName(ReleasePhaseSchema, p);

/** The lifecycle part of the overview, from the folded state and the change states the gateway knows. */
function lifecycle(row: ReleaseRow, changes: Map<string, string>, now: Date) {
  if (!row.snapshot || !row.model) return {};
  const release: Release = fromJson(ReleaseSchema, row.snapshot);
  const model = fromJson(ReleaseModelSchema, row.model);
  const linked: LinkedChangeState[] = release.linkedChangeRequestIds.map((id) => ({
    changeRequestId: id,
    state: changes.get(id),
  }));
  const conditions = gateConditions({ release, model }, linked);
  const next = nextPhase(model, release.phase);
  return {
    abandonReason: release.abandonReason,
    modelName: release.modelName,
    modelVersion: release.modelVersion,
    phaseEntry: release.phaseEntry,
    phaseEnteredAt: date(release.phaseEnteredAt),
    phaseDueAt: row.phase_due_at,
    overdue: row.phase_due_at !== null && row.phase_due_at < now,
    gate: {
      phase: phaseName(release.phase),
      nextPhase: next === undefined ? null : phaseName(next),
      open: conditions.every((c) => c.met),
      conditions: conditions.map((c) => ({ rule: c.rule, subject: c.subject, description: c.description, met: c.met })),
    },
    approvals: release.approvals.map((a) => ({
      approvalId: a.approvalId,
      phase: phaseName(a.phase),
      phaseEntry: a.phaseEntry,
      approverGroup: a.approverGroup,
      quorum: a.quorum,
      requestedBy: a.requestedBy,
      requestedAt: date(a.requestedAt),
      status: enumName(ApprovalStatusSchema, a.status),
      votes: a.votes.map((v) => ({ approver: v.approver, approved: v.approved, comment: v.comment, at: date(v.at) })),
    })),
    tasks: release.tasks.map((t) => ({
      taskId: t.taskId,
      phase: phaseName(t.phase),
      phaseEntry: t.phaseEntry,
      name: t.name,
      required: t.required,
      fromModel: t.fromModel,
      assignee: t.assignee,
      status: enumName(TaskStatusSchema, t.status),
      dueAt: date(t.dueAt),
    })),
    package: release.package.map((a) => ({
      artifactId: a.artifactId,
      name: a.name,
      version: a.version,
      sha256: a.sha256,
      configurationItemId: a.configurationItemId,
    })),
    packageFrozen: release.packageFrozen,
    linkedChangeRequests: linked.map((c) => ({ changeRequestId: c.changeRequestId, state: c.state ?? null })),
    deadlineMisses: release.deadlineMisses.map((m) => ({
      phase: phaseName(m.phase),
      phaseEntry: m.phaseEntry,
      dueAt: date(m.dueAt),
      escalated: m.escalated,
    })),
    backOutPlan: release.backOutPlan,
    log: release.log.map((e) => ({
      entryId: e.entryId,
      kind: enumName(LogEntryKindSchema, e.kind),
      text: e.text,
      recordedBy: e.recordedBy,
      recordedAt: date(e.recordedAt),
    })),
    review: release.review
      ? {
          outcome: enumName(ReviewOutcomeSchema, release.review.outcome),
          lessonsLearned: release.review.lessonsLearned,
          followUpActions: release.review.followUpActions,
          reviewedBy: release.review.reviewedBy,
          reviewedAt: date(release.review.reviewedAt),
        }
      : null,
  };
}

const toRelease = (r: ReleaseRow, changes: Map<string, string> = new Map(), now = new Date()) => ({
  releaseId: r.release_id,
  key: r.key,
  title: r.title,
  description: r.description,
  type: r.type,
  category: r.category,
  owner: r.owner,
  coordinator: r.coordinator,
  stakeholders: r.stakeholders,
  risk: r.risk,
  plannedWindow: r.planned_start || r.planned_end ? { start: r.planned_start, end: r.planned_end } : null,
  phase: r.phase,
  registeredBy: r.registered_by,
  registeredAt: r.registered_at,
  version: Number(r.version),
  updatedAt: r.updated_at,
  status: r.status,
  ...lifecycle(r, changes, now),
});

const toHistory = (h: HistoryRow) => ({
  seq: Number(h.seq),
  releaseId: h.release_id,
  version: Number(h.version),
  eventType: h.event_type,
  occurredAt: h.occurred_at,
  actor: h.actor,
  reason: h.reason,
  phase: h.phase,
  eventId: h.event_id,
  correlationId: h.correlation_id,
  causationId: h.causation_id,
  requestId: h.request_id,
});

/** States of the linked change requests, from the gateway's change view (empty when unknown). */
async function changeStates(pool: pg.Pool, rows: ReleaseRow[]): Promise<Map<string, string>> {
  const ids = rows.flatMap((r) => (r.snapshot ? fromJson(ReleaseSchema, r.snapshot).linkedChangeRequestIds : []));
  if (!ids.length) return new Map();
  const { rows: states } = await pool.query<{ id: string; state: string }>(
    "SELECT change_request_id::text AS id, state FROM change_view WHERE change_request_id::text = ANY($1)",
    [ids],
  );
  return new Map(states.map((s) => [s.id, s.state]));
}

const releaseNotFound = (reply: FastifyReply, id: string) => notFound(reply, `release ${id} not found`);

export function releaseRoutes(app: FastifyInstance, pool: pg.Pool, notifications: NotificationHub) {
  // Event streams never end by themselves: end them when the server closes, or it would wait forever.
  const openStreams = new Set<ServerResponse>();
  app.addHook("preClose", async () => {
    for (const res of openStreams) res.end();
  });

  app.get<{ Params: { id: string } }>(
    "/v1/releases/:id",
    {
      schema: {
        tags: ["releases"],
        summary: "One release: phase, gate conditions, approvals, tasks, package, deadlines, deployments",
        params: { type: "object", properties: { id: uuidSchema }, required: ["id"] },
        response: {
          200: { ...releaseSchema, properties: { ...releaseSchema.properties, deployments: arr(deploymentSchema) } },
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { rows } = await pool.query<ReleaseRow>("SELECT * FROM release_view WHERE release_id = $1", [
        request.params.id,
      ]);
      const row = rows[0];
      if (!row) return releaseNotFound(reply, request.params.id);
      const deployments = await deploymentsOfRelease(pool, row.release_id);
      return { ...toRelease(row, await changeStates(pool, rows)), deployments };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/releases/:id/history",
    {
      schema: {
        tags: ["releases"],
        summary: "Audit trail of one release: every event with actor, time and reason",
        params: { type: "object", properties: { id: uuidSchema }, required: ["id"] },
        response: { 200: obj({ entries: arr(historySchema) }), 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { rows } = await pool.query<HistoryRow>(
        "SELECT * FROM release_history WHERE release_id = $1 ORDER BY version",
        [request.params.id],
      );
      if (!rows.length) return releaseNotFound(reply, request.params.id);
      return { entries: rows.map(toHistory) };
    },
  );

  app.get<{ Querystring: { releaseId?: string; after?: number } }>(
    "/v1/releases/events",
    {
      schema: {
        tags: ["releases"],
        summary: "Server-Sent Events: release events as they are projected (id = seq; resume with Last-Event-ID)",
        querystring: {
          type: "object",
          properties: {
            releaseId: uuidSchema,
            after: {
              type: "integer",
              minimum: 0,
              maximum: Number.MAX_SAFE_INTEGER,
              description: "start after this seq (default: now); a Last-Event-ID header takes precedence",
            },
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      // A reconnecting EventSource sends the id of the last event it saw, and keeps its URL (and
      // `after`): the header says where to resume. It sends none (or an empty one) before its first event.
      const lastEventId = request.headers["last-event-id"];
      let after: number;
      if (lastEventId) {
        if (typeof lastEventId !== "string" || !/^\d+$/.test(lastEventId) || !Number.isSafeInteger(Number(lastEventId)))
          return badRequest(reply, "Last-Event-ID must be the id of an event of this stream");
        after = Number(lastEventId);
      } else if (request.query.after !== undefined) after = request.query.after;
      else {
        const { rows } = await pool.query<{ max: string | null }>("SELECT max(seq) AS max FROM release_history");
        after = Number(rows[0]?.max ?? 0);
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      res.write(": connected\n\n");
      openStreams.add(res);
      let closed = false;
      let polling = false;
      let again = false;
      const poll = async (): Promise<void> => {
        if (closed) return;
        if (polling) {
          again = true; // woken mid-poll: look once more when this one is done
          return;
        }
        polling = true;
        again = false;
        try {
          const args: unknown[] = [after];
          let filter = "";
          if (request.query.releaseId) {
            args.push(request.query.releaseId);
            filter = "AND release_id = $2";
          }
          const { rows } = await pool.query<HistoryRow>(
            `SELECT * FROM release_history WHERE seq > $1 ${filter} ORDER BY seq LIMIT 500`,
            args,
          );
          for (const row of rows) {
            const entry = toHistory(row);
            res.write(`id: ${entry.seq}\nevent: ${entry.eventType}\ndata: ${JSON.stringify(entry)}\n\n`);
            after = entry.seq;
          }
          if (rows.length === 500) again = true;
        } catch (error) {
          request.log.error({ err: error }, "release event stream poll failed");
        } finally {
          polling = false;
        }
        if (again) return poll();
      };
      // Woken by the projection's NOTIFY; the interval covers notifications missed meanwhile.
      const unsubscribe = notifications.subscribe(() => void poll());
      const timer = setInterval(() => {
        void poll();
        res.write(": keep-alive\n\n");
      }, 5_000);
      void poll();
      request.raw.on("close", () => {
        closed = true;
        openStreams.delete(res);
        clearInterval(timer);
        unsubscribe();
      });
    },
  );

  app.get<{
    Querystring: {
      pageSize: number;
      pageToken?: string;
      phase?: string;
      type?: string;
      owner?: string;
      status?: string;
      overdue?: boolean;
    };
  }>(
    "/v1/releases",
    {
      schema: {
        tags: ["releases"],
        summary: "Releases, newest first, paged",
        querystring: {
          type: "object",
          properties: {
            pageSize: { type: "integer", minimum: 1, maximum: 200, default: 50 },
            pageToken: { type: "string", maxLength: 200 },
            phase: { type: "string" },
            type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
            owner: { type: "string" },
            status: { type: "string", enum: ["ACTIVE", "ABANDONED", "CLOSED"] },
            overdue: { type: "boolean", description: "only releases whose current phase deadline has passed" },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: {
              releases: { type: "array", items: releaseSchema },
              nextPageToken: { type: ["string", "null"] },
            },
          },
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { pageSize, pageToken, phase, type, owner, status, overdue } = request.query;
      const { where, args } = equalityFilters({ phase, type, owner, status });
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, isIsoTimestamp, isUuid);
        if (!cursor) return badRequest(reply, "pageToken is not valid");
        args.push(new Date(cursor[0]), cursor[1]);
        where.push(`(registered_at, release_id) < ($${args.length - 1}::timestamptz, $${args.length}::uuid)`);
      }
      if (overdue !== undefined)
        where.push(overdue ? "phase_due_at < now()" : "(phase_due_at IS NULL OR phase_due_at >= now())");
      args.push(pageSize + 1);
      const { rows } = await pool.query<ReleaseRow>(
        `SELECT * FROM release_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY registered_at DESC, release_id DESC LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const changes = await changeStates(pool, page);
      return {
        releases: page.map((row) => toRelease(row, changes)),
        nextPageToken:
          rows.length > pageSize && last ? encodePageToken(last.registered_at.toISOString(), last.release_id) : null,
      };
    },
  );
}
