import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { READER_ROLES } from "@rdm/auth";
import type { Aggregate, CommandHandler, Outcome } from "@rdm/command-handler";
import { type CallContext, InvalidArgument, NotFound, requestFingerprint, type ServiceRegistration } from "@rdm/grpc";
import type { ChangeRequest, FreezeWindow, StandardChangeTemplate } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  AddChangeTaskResponseSchema,
  ApproveChangeResponseSchema,
  AssessChangeResponseSchema,
  ChangeService,
  CloseChangeResponseSchema,
  CompleteChangeImplementationResponseSchema,
  CompleteChangeTaskResponseSchema,
  DeclareFreezeWindowResponseSchema,
  FailChangeImplementationResponseSchema,
  GetChangeCalendarResponseSchema,
  GetChangeResponseSchema,
  LiftFreezeWindowResponseSchema,
  ListChangesResponseSchema,
  ListStandardChangeTemplatesResponseSchema,
  RaiseChangeResponseSchema,
  RegisterStandardChangeTemplateResponseSchema,
  RejectChangeResponseSchema,
  RetireStandardChangeTemplateResponseSchema,
  ReviewChangeResponseSchema,
  ScheduleChangeResponseSchema,
  StartChangeImplementationResponseSchema,
  SubmitChangeResponseSchema,
  UpdateChangeResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { toInterval } from "../domain/calendar.js";
import {
  type BoardGroups,
  type ChangeDetails,
  type ChangeRequestCommand,
  type ChangeRequestState,
  changeKey,
  DEFAULT_BOARD_GROUPS,
  decide,
} from "../domain/change-request.js";
import { decideFreezeWindow } from "../domain/freeze-window.js";
import { decideStandardChangeTemplate } from "../domain/standard-change-template.js";
import { changeRequests, freezeWindows, standardChangeTemplates } from "../store/aggregates.js";
import type { ServiceEvent } from "../store/event-codec.js";
import {
  bookedChangesOverlapping,
  calendar,
  freezesOverlapping,
  listChanges,
  listTemplates,
  nextChangeKeySequence,
  saveChange,
  saveFreezeWindow,
  saveTemplate,
} from "../store/read-model.js";

export interface ChangeApiDeps {
  pool: pg.Pool;
  handler: CommandHandler<ServiceEvent>;
  clock?: () => Date;
  /** The token groups of the CAB and the ECAB (default "cab" and "ecab"). */
  boardGroups?: BoardGroups;
}

const REQUESTERS = ["change-manager", "release-manager", "release-coordinator"] as const;
const IMPLEMENTERS = ["change-manager", "deployer"] as const;

/** Serializes scheduling and freeze declarations, so two changes cannot book colliding windows unseen. */
const CALENDAR_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rdm.change.calendar'))";

const DEFAULT_PAGE_SIZE = 50;

interface RaisePreparation {
  key: string;
  template: StandardChangeTemplate | undefined;
}

interface SchedulePreparation {
  freezes: FreezeWindow[];
  otherChanges: ChangeRequest[];
}

/** The requester's fields, as RaiseChange and UpdateChange both carry them. */
const changeDetails = (
  request: Omit<ChangeDetails, "plannedWindow"> & { plannedWindow?: TimeWindow },
): ChangeDetails => ({
  title: request.title,
  description: request.description,
  justification: request.justification,
  affectedCiIds: request.affectedCiIds,
  environments: request.environments,
  implementationPlan: request.implementationPlan,
  testPlan: request.testPlan,
  backoutPlan: request.backoutPlan,
  impact: request.impact,
  urgency: request.urgency,
  plannedWindow: request.plannedWindow,
});

const requireWindow = (window: TimeWindow | undefined, field: string) => {
  const interval = toInterval(window);
  if (!interval) throw new InvalidArgument([{ field, description: "start and end are required" }]);
  return interval;
};

export function changeServiceHandlers({
  pool,
  handler,
  clock = () => new Date(),
  boardGroups = DEFAULT_BOARD_GROUPS,
}: ChangeApiDeps): ServiceRegistration<(typeof ChangeService)["method"]> {
  type Methods = (typeof ChangeService)["method"];

  /**
   * The shape of every command RPC, run by the command handler (request id, re-decision on a
   * concurrent append): in one transaction, optional preparation (locks, calendar queries),
   * decide on the stream, the query tables updated, and the response recorded with the events.
   */
  async function command<S, E extends ServiceEvent, O extends DescMessage, P = undefined>(
    method: Methods[keyof Methods],
    request: { requestId: string },
    ctx: CallContext,
    spec: {
      aggregate: Aggregate<S, E>;
      streamId: string;
      output: O;
      prepare?: (client: pg.PoolClient) => Promise<P>;
      decide: (state: S, prepared: P) => E[];
      project: (client: pg.PoolClient, state: S) => Promise<void>;
      respond: (outcome: Outcome<S, E>, prepared: P) => MessageShape<O>;
    },
  ): Promise<MessageShape<O>> {
    // What the last attempt prepared: its decision and its answer are made from it.
    let prepared = undefined as P;
    return handler.handle(
      {
        actor: ctx.principal.subject,
        groups: ctx.principal.groups,
        requestId: request.requestId,
        traceparent: ctx.traceparent,
      },
      {
        aggregate: spec.aggregate,
        streamId: spec.streamId,
        ...(spec.prepare
          ? {
              prepare: async (client: pg.PoolClient) => {
                prepared = await (spec.prepare as (client: pg.PoolClient) => Promise<P>)(client);
              },
            }
          : {}),
        decide: (state) => spec.decide(state, prepared),
        project: (client, outcome) => spec.project(client, outcome.after),
        response: spec.output,
        respond: (outcome) => spec.respond(outcome, prepared),
        requestHash: requestFingerprint(method.input as DescMessage, request as never),
      },
    );
  }

  /** A command on one change request whose response is the change after it. */
  function changeCommand<O extends DescMessage, P = unknown>(
    method: Methods[keyof Methods],
    request: { requestId: string; changeRequestId?: string },
    ctx: CallContext,
    output: O,
    toCommand: (prepared: NoInfer<P>) => ChangeRequestCommand,
    options: {
      /** Defaults to the request's change_request_id. */
      streamId?: string;
      prepare?: (client: pg.PoolClient) => Promise<P>;
      respond?: (outcome: Outcome<ChangeRequestState, ServiceEvent>, prepared: P) => MessageShape<O>;
    } = {},
  ) {
    return command(method, request, ctx, {
      aggregate: changeRequests,
      streamId: (options.streamId ?? request.changeRequestId ?? "").toLowerCase(),
      output,
      ...(options.prepare ? { prepare: options.prepare } : {}),
      decide: (state, prepared: P) => decide(toCommand(prepared), state),
      project: async (client, state) => {
        if (state.change) await saveChange(client, state.change);
      },
      respond:
        options.respond ?? ((outcome) => create(output, { change: outcome.after.change } as never) as MessageShape<O>),
    });
  }

  const actor = (ctx: CallContext) => ctx.principal.subject;
  const M = ChangeService.method;

  return {
    service: ChangeService,
    roles: {
      registerStandardChangeTemplate: ["change-manager"],
      retireStandardChangeTemplate: ["change-manager"],
      listStandardChangeTemplates: [...READER_ROLES],
      raiseChange: [...REQUESTERS],
      updateChange: [...REQUESTERS],
      submitChange: [...REQUESTERS],
      assessChange: ["change-manager"],
      approveChange: ["approver"],
      rejectChange: ["approver"],
      scheduleChange: ["change-manager"],
      startChangeImplementation: [...IMPLEMENTERS],
      completeChangeImplementation: [...IMPLEMENTERS],
      failChangeImplementation: [...IMPLEMENTERS],
      reviewChange: ["change-manager"],
      closeChange: ["change-manager"],
      addChangeTask: ["change-manager", "release-coordinator"],
      completeChangeTask: ["change-manager", "release-coordinator", "deployer"],
      declareFreezeWindow: ["change-manager"],
      liftFreezeWindow: ["change-manager"],
      getChangeCalendar: [...READER_ROLES],
      getChange: [...READER_ROLES],
      listChanges: [...READER_ROLES],
    },
    handlers: {
      async registerStandardChangeTemplate(request, ctx) {
        const templateId = randomUUID();
        return command(M.registerStandardChangeTemplate, request, ctx, {
          aggregate: standardChangeTemplates,
          streamId: templateId,
          output: RegisterStandardChangeTemplateResponseSchema,
          decide: (state) =>
            decideStandardChangeTemplate(
              {
                kind: "registerTemplate",
                templateId,
                name: request.name,
                description: request.description,
                implementationPlan: request.implementationPlan,
                testPlan: request.testPlan,
                backoutPlan: request.backoutPlan,
                risk: request.risk,
              },
              state,
            ),
          project: async (client, state) => {
            if (state.template) await saveTemplate(client, state.template);
          },
          respond: ({ after }) =>
            create(RegisterStandardChangeTemplateResponseSchema, after.template ? { template: after.template } : {}),
        });
      },

      async retireStandardChangeTemplate(request, ctx) {
        return command(M.retireStandardChangeTemplate, request, ctx, {
          aggregate: standardChangeTemplates,
          streamId: request.templateId,
          output: RetireStandardChangeTemplateResponseSchema,
          decide: (state) => decideStandardChangeTemplate({ kind: "retireTemplate", reason: request.reason }, state),
          project: async (client, state) => {
            if (state.template) await saveTemplate(client, state.template);
          },
          respond: ({ after }) =>
            create(RetireStandardChangeTemplateResponseSchema, after.template ? { template: after.template } : {}),
        });
      },

      async listStandardChangeTemplates(request) {
        return create(ListStandardChangeTemplatesResponseSchema, {
          templates: await listTemplates(pool, request.includeRetired),
        });
      },

      async raiseChange(request, ctx) {
        const changeRequestId = randomUUID();
        return changeCommand<typeof RaiseChangeResponseSchema, RaisePreparation>(
          M.raiseChange,
          request,
          ctx,
          RaiseChangeResponseSchema,
          ({ key, template }) => ({
            kind: "raiseChange",
            changeRequestId,
            key,
            requester: actor(ctx),
            type: request.type,
            ...changeDetails(request),
            linkedReleaseId: request.linkedReleaseId.toLowerCase(),
            templateId: request.templateId.toLowerCase(),
            template,
          }),
          {
            streamId: changeRequestId,
            prepare: async (client) => {
              const year = clock().getUTCFullYear();
              const key = changeKey(year, await nextChangeKeySequence(client, year));
              const template = request.templateId
                ? (
                    await handler.load(client, {
                      aggregate: standardChangeTemplates,
                      streamId: request.templateId.toLowerCase(),
                    })
                  ).state.template
                : undefined;
              return { key, template };
            },
          },
        );
      },

      async updateChange(request, ctx) {
        return changeCommand(M.updateChange, request, ctx, UpdateChangeResponseSchema, () => ({
          kind: "updateChange",
          ...changeDetails(request),
        }));
      },

      async submitChange(request, ctx) {
        return changeCommand(M.submitChange, request, ctx, SubmitChangeResponseSchema, () => ({
          kind: "submitChange",
          actor: actor(ctx),
        }));
      },

      async assessChange(request, ctx) {
        return changeCommand(M.assessChange, request, ctx, AssessChangeResponseSchema, () => ({
          kind: "assessChange",
          impact: request.impact,
          urgency: request.urgency,
          requiredApprovals: request.requiredApprovals,
          notes: request.notes,
        }));
      },

      async approveChange(request, ctx) {
        return changeCommand(M.approveChange, request, ctx, ApproveChangeResponseSchema, () => ({
          kind: "approveChange",
          approver: actor(ctx),
          approverGroups: ctx.principal.groups,
          boardGroups,
          comment: request.comment,
        }));
      },

      async rejectChange(request, ctx) {
        return changeCommand(M.rejectChange, request, ctx, RejectChangeResponseSchema, () => ({
          kind: "rejectChange",
          approver: actor(ctx),
          approverGroups: ctx.principal.groups,
          boardGroups,
          reason: request.reason,
        }));
      },

      async scheduleChange(request, ctx) {
        const window = requireWindow(request.window, "window");
        return changeCommand<typeof ScheduleChangeResponseSchema, SchedulePreparation>(
          M.scheduleChange,
          request,
          ctx,
          ScheduleChangeResponseSchema,
          ({ freezes, otherChanges }) => ({
            kind: "scheduleChange",
            window: request.window as TimeWindow,
            strict: request.strict,
            freezeOverrideJustification: request.freezeOverrideJustification,
            freezes,
            otherChanges,
          }),
          {
            prepare: async (client) => {
              await client.query(CALENDAR_LOCK);
              return {
                freezes: await freezesOverlapping(client, window, false),
                otherChanges: await bookedChangesOverlapping(client, window),
              };
            },
            respond: ({ after }, { freezes }) => {
              const change = after.change;
              return create(ScheduleChangeResponseSchema, {
                ...(change ? { change } : {}),
                collisions: change?.collisions ?? [],
                overriddenFreezes: freezes.filter((f) => change?.overriddenFreezeIds.includes(f.freezeWindowId)),
              });
            },
          },
        );
      },

      async startChangeImplementation(request, ctx) {
        return changeCommand(
          M.startChangeImplementation,
          request,
          ctx,
          StartChangeImplementationResponseSchema,
          () => ({ kind: "startImplementation" }),
        );
      },

      async completeChangeImplementation(request, ctx) {
        return changeCommand(
          M.completeChangeImplementation,
          request,
          ctx,
          CompleteChangeImplementationResponseSchema,
          () => ({ kind: "completeImplementation" }),
        );
      },

      async failChangeImplementation(request, ctx) {
        return changeCommand(M.failChangeImplementation, request, ctx, FailChangeImplementationResponseSchema, () => ({
          kind: "failImplementation",
          reason: request.reason,
        }));
      },

      async reviewChange(request, ctx) {
        return changeCommand(M.reviewChange, request, ctx, ReviewChangeResponseSchema, () => ({
          kind: "reviewChange",
          outcome: request.outcome,
          notes: request.notes,
        }));
      },

      async closeChange(request, ctx) {
        return changeCommand(M.closeChange, request, ctx, CloseChangeResponseSchema, () => ({ kind: "closeChange" }));
      },

      async addChangeTask(request, ctx) {
        const taskId = randomUUID();
        return changeCommand(
          M.addChangeTask,
          request,
          ctx,
          AddChangeTaskResponseSchema,
          () => ({ kind: "addTask", taskId, title: request.title, assignee: request.assignee }),
          {
            respond: ({ after }) =>
              create(AddChangeTaskResponseSchema, { ...(after.change ? { change: after.change } : {}), taskId }),
          },
        );
      },

      async completeChangeTask(request, ctx) {
        return changeCommand(M.completeChangeTask, request, ctx, CompleteChangeTaskResponseSchema, () => ({
          kind: "completeTask",
          taskId: request.taskId.toLowerCase(),
          by: actor(ctx),
        }));
      },

      async declareFreezeWindow(request, ctx) {
        const freezeWindowId = randomUUID();
        return command(M.declareFreezeWindow, request, ctx, {
          aggregate: freezeWindows,
          streamId: freezeWindowId,
          output: DeclareFreezeWindowResponseSchema,
          prepare: async (client) => {
            await client.query(CALENDAR_LOCK);
          },
          decide: (state) =>
            decideFreezeWindow(
              {
                kind: "declareFreeze",
                freezeWindowId,
                name: request.name,
                reason: request.reason,
                window: request.window as TimeWindow,
                scope: request.scope as NonNullable<typeof request.scope>,
              },
              state,
            ),
          project: async (client, state) => {
            if (state.freeze) await saveFreezeWindow(client, state.freeze);
          },
          respond: ({ after }) =>
            create(DeclareFreezeWindowResponseSchema, after.freeze ? { freezeWindow: after.freeze } : {}),
        });
      },

      async liftFreezeWindow(request, ctx) {
        return command(M.liftFreezeWindow, request, ctx, {
          aggregate: freezeWindows,
          streamId: request.freezeWindowId,
          output: LiftFreezeWindowResponseSchema,
          decide: (state) => decideFreezeWindow({ kind: "liftFreeze", reason: request.reason }, state),
          project: async (client, state) => {
            if (state.freeze) await saveFreezeWindow(client, state.freeze);
          },
          respond: ({ after }) =>
            create(LiftFreezeWindowResponseSchema, after.freeze ? { freezeWindow: after.freeze } : {}),
        });
      },

      async getChangeCalendar(request) {
        const { changes, freezes } = await calendar(pool, requireWindow(request.window, "window"));
        return create(GetChangeCalendarResponseSchema, { changes, freezeWindows: freezes });
      },

      async getChange(request) {
        const { state } = await handler.load(pool, { aggregate: changeRequests, streamId: request.changeRequestId });
        if (!state.change) throw new NotFound("change request", request.changeRequestId);
        return create(GetChangeResponseSchema, { change: state.change });
      },

      async listChanges(request) {
        const offset = request.pageToken ? Number.parseInt(request.pageToken, 10) : 0;
        if (!Number.isSafeInteger(offset) || offset < 0) {
          throw new InvalidArgument([{ field: "page_token", description: "not a page token from ListChanges" }]);
        }
        const limit = request.pageSize || DEFAULT_PAGE_SIZE;
        const changes = await listChanges(
          pool,
          {
            states: request.states,
            types: request.types,
            ciId: request.ciId,
            window: toInterval(request.window),
            linkedReleaseId: request.linkedReleaseId.toLowerCase(),
            text: request.text,
          },
          { offset, limit: limit + 1 },
        );
        return create(ListChangesResponseSchema, {
          changes: changes.slice(0, limit),
          nextPageToken: changes.length > limit ? String(offset + limit) : "",
        });
      },
    },
  };
}
