import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Aggregate, CommandHandler, Outcome, Projected } from "@rdm/command-handler";
import type { Projection } from "@rdm/eventstore";
import type { ServiceHandlers } from "@rdm/grpc";
import { type CallContext, InvalidArgument, requestFingerprint } from "@rdm/grpc";
import type { YearlyKeys } from "@rdm/keys";
import { instantOf } from "@rdm/proto";
import type { ChangeRequest, FreezeWindow } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { toInterval } from "../domain/calendar.js";
import {
  type BoardGroups,
  type ChangeDetails,
  type ChangeRequestCommand,
  type ChangeRequestState,
  decide,
} from "../domain/change-request.js";
import { changeRequests } from "../store/aggregates.js";
import type { ServiceEvent } from "../store/event-codec.js";
import { changeProjection } from "../store/read-model.js";

export interface ChangeApiDeps {
  pool: pg.Pool;
  handler: CommandHandler<ServiceEvent>;
  clock?: () => Date;
  /** The token groups of the CAB and the ECAB (default "cab" and "ecab"). */
  boardGroups?: BoardGroups;
}

/** The dependencies with their defaults applied, and the change keys (from the year's sequence in `pool`). */
export type ChangeRpcDeps = Required<ChangeApiDeps> & { keys: YearlyKeys };

export type ChangeHandlers = ServiceHandlers<(typeof ChangeService)["method"]>;
type Methods = (typeof ChangeService)["method"];

/** Serializes scheduling and freeze declarations, so two changes cannot book colliding windows unseen. */
export const CALENDAR_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rdm.change.calendar'))";

export const DEFAULT_PAGE_SIZE = 50;

export interface SchedulePreparation {
  freezes: FreezeWindow[];
  otherChanges: ChangeRequest[];
}

/** How far in the future a first commit time may be: the clocks of the caller and this service differ. */
export const FIRST_COMMIT_CLOCK_SKEW_MS = 5 * 60_000;

/** A commit cannot have happened after now (allowing for clock skew): refused as invalid input. */
function firstCommitTime(value: Timestamp | undefined, now: Date): Timestamp | undefined {
  if (value && instantOf(value).getTime() > now.getTime() + FIRST_COMMIT_CLOCK_SKEW_MS) {
    throw new InvalidArgument([
      { field: "first_commit_time", description: "must not be in the future (5 minutes of clock skew allowed)" },
    ]);
  }
  return value;
}

/** The requester's fields, as RaiseChange and UpdateChange both carry them; `now` checks the commit time. */
export const changeDetails = (
  request: Omit<ChangeDetails, "plannedWindow" | "firstCommitTime"> & {
    plannedWindow?: TimeWindow;
    firstCommitTime?: Timestamp;
  },
  now: Date,
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
  firstCommitTime: firstCommitTime(request.firstCommitTime, now),
});

export const requireWindow = (window: TimeWindow | undefined, field: string) => {
  const interval = toInterval(window);
  if (!interval) throw new InvalidArgument([{ field, description: "start and end are required" }]);
  return interval;
};

/** How the change service's RPCs run commands through the command handler. */
export function changeCommandRpc({ handler }: Pick<ChangeRpcDeps, "handler">) {
  const command = commandRunner(handler);
  return { command, changeCommand: changeCommandOf(command), actor, M: ChangeService.method };
}

function commandRunner(handler: ChangeRpcDeps["handler"]) {
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
      /** The stream id was made for this command (see @rdm/command-handler). */
      newStream?: boolean;
      output: O;
      prepare?: (client: pg.PoolClient) => Promise<P>;
      /** May read on `tx`: the command's transaction, or a connection of its own when grouped. */
      decide: (state: S, prepared: P, tx: pg.PoolClient) => E[] | Promise<E[]>;
      /** Writes the query tables of one command's state; or, for a whole group-committed batch, `projection`. */
      project?: (client: pg.PoolClient, state: S) => Promise<void>;
      projection?: Projection<Projected<S, E>>;
      respond: (outcome: Outcome<S, E>, prepared: P) => MessageShape<O>;
      /** The answer is the state after the command (see @rdm/command-handler): recorded as its version. */
      answerIsState?: boolean;
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
        newStream: spec.newStream ?? false,
        ...(spec.prepare
          ? {
              prepare: async (client: pg.PoolClient) => {
                prepared = await (spec.prepare as (client: pg.PoolClient) => Promise<P>)(client);
              },
            }
          : {}),
        decide: (state, _ctx, tx) => spec.decide(state, prepared, tx),
        ...(spec.projection ? { projection: spec.projection } : {}),
        ...(spec.project ? { project: projectAfter(spec.project) } : {}),
        response: spec.output,
        respond: (outcome) => spec.respond(outcome, prepared),
        answerIsState: spec.answerIsState ?? false,
        requestHash: requestFingerprint(method.input as DescMessage, request as never, ctx.principal.subject),
      },
    );
  }

  return command;
}

/** A command's projection from the state after it. */
const projectAfter =
  <S, E>(project: (client: pg.PoolClient, state: S) => Promise<void>) =>
  (client: pg.PoolClient, outcome: Outcome<S, E>) =>
    project(client, outcome.after);

const actor = (ctx: CallContext) => ctx.principal.subject;

/** Commands on one change request whose response is the change after it. */
function changeCommandOf(command: ReturnType<typeof commandRunner>) {
  /** A command on one change request whose response is the change after it. */
  function changeCommand<O extends DescMessage, P = unknown>(
    method: Methods[keyof Methods],
    request: { requestId: string; changeRequestId?: string },
    ctx: CallContext,
    output: O,
    toCommand: (
      prepared: NoInfer<P>,
      state: ChangeRequestState,
      tx: pg.PoolClient,
    ) => ChangeRequestCommand | Promise<ChangeRequestCommand>,
    options: {
      /** Defaults to the request's change_request_id. */
      streamId?: string;
      newStream?: boolean;
      prepare?: (client: pg.PoolClient) => Promise<P>;
      respond?: (outcome: Outcome<ChangeRequestState, ServiceEvent>, prepared: P) => MessageShape<O>;
    } = {},
  ) {
    return command(method, request, ctx, {
      aggregate: changeRequests,
      streamId: options.streamId ?? request.changeRequestId ?? "",
      newStream: options.newStream ?? false,
      output,
      ...(options.prepare ? { prepare: options.prepare } : {}),
      decide: async (state, prepared: P, tx) => decide(await toCommand(prepared, state, tx), state),
      projection: changeProjection,
      respond:
        options.respond ?? ((outcome) => create(output, { change: outcome.after.change } as never) as MessageShape<O>),
      // The whole change request: recorded as the stream's version, rebuilt on a retry.
      answerIsState: !options.respond,
    });
  }

  return changeCommand;
}
