import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  type ClientCommand,
  CommandHandler,
  type CommandOrigin,
  type DecisionContext,
  type DomainEvent,
  RuleViolation,
} from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import { type CallContext, requestFingerprint } from "@rdm/grpc";
import type pg from "pg";
import {
  type DeploymentAggregateState,
  type DeploymentCommand,
  type DeploymentEvent,
  decide,
  decideEnvironment,
  type EnvironmentCommand,
  environmentStreamId,
} from "../domain/index.js";
import { type Queryable, saveEnvironmentAndQueue } from "../store/tables.js";
import { deploymentCodec, deployments, environments } from "./aggregates.js";
import { projectDeployment, withEnvironmentSequences } from "./projection.js";

/** The one command handler of the service's API and jobs. */
export const deploymentCommandHandler = (store: EventStore, clock: () => Date) =>
  new CommandHandler<DomainEvent>({
    store,
    codec: deploymentCodec,
    clock,
    // Two commands on one deployment may wait on each other's queue row and stream append: the
    // one PostgreSQL aborts (a deadlock) is decided again by the handler, as on a version conflict.
  });

export const originOf = (ctx: CallContext, requestId: string): CommandOrigin => ({
  actor: ctx.principal.subject,
  groups: ctx.principal.groups,
  requestId,
  traceparent: ctx.traceparent,
});

type Handler = CommandHandler<DomainEvent>;

/**
 * A command the service gives itself (the lease sweep, a reaction to an upstream event), for
 * `handleIn` in the caller's transaction: decided as the API's are, with the environment's
 * outcome sequences, and projected to the query tables.
 */
export const ownDeploymentCommand = (streamId: string, command: DeploymentCommand) => ({
  aggregate: deployments,
  streamId,
  decide: async (state: DeploymentAggregateState, _ctx: unknown, client: pg.PoolClient) =>
    withEnvironmentSequences(client, decide(command, state)),
  project: projectDeployment,
});

/** A command RPC on one deployment, answered with the deployment after it. */
export function runDeploymentCommand<R extends DescMessage>(
  handler: Handler,
  ctx: CallContext,
  method: { input: DescMessage },
  request: MessageShape<DescMessage> & { requestId: string },
  spec: {
    output: R;
    streamId: string | ((db: Queryable) => Promise<string>);
    prepare?: (tx: pg.PoolClient) => Promise<void>;
    command: (
      state: DeploymentAggregateState,
      ctx: DecisionContext,
      tx: pg.PoolClient,
    ) => DeploymentCommand | Promise<DeploymentCommand>;
    /** An answer made of more than the deployment after the command (default: `{ deployment }`). */
    respond?: (state: DeploymentAggregateState) => MessageShape<R>;
  },
): Promise<MessageShape<R>> {
  const command: ClientCommand<DeploymentAggregateState, DeploymentEvent, R> = {
    aggregate: deployments,
    streamId: spec.streamId,
    // Always in a transaction of its own (never group-committed): decisions lock rows that must
    // stay locked until the events commit (an environment's outcome sequence, its turn to start
    // or roll back, a step's queue row); a grouped decision runs outside any transaction.
    prepare: spec.prepare ?? (async () => undefined),
    decide: async (state, decision, tx) =>
      withEnvironmentSequences(tx, decide(await spec.command(state, decision, tx), state)),
    project: projectDeployment,
    response: spec.output,
    respond: ({ after }) =>
      spec.respond?.(after) ?? (create(spec.output, { deployment: after.deployment } as never) as MessageShape<R>),
    // The deployment after the command: recorded as the stream's version, rebuilt on a retry.
    answerIsState: !spec.respond,
    requestHash: requestFingerprint(method.input, request as never, ctx.principal.subject),
  };
  return handler.handle(originOf(ctx, request.requestId), command);
}

/** A command RPC on one environment, answered with the environment after it. */
export function runEnvironmentCommand<R extends DescMessage>(
  handler: Handler,
  ctx: CallContext,
  method: { input: DescMessage },
  request: MessageShape<DescMessage> & { requestId: string },
  spec: { output: R; name: string; command: EnvironmentCommand | ((tx: pg.PoolClient) => Promise<EnvironmentCommand>) },
): Promise<MessageShape<R>> {
  const { command } = spec;
  return handler.handle(originOf(ctx, request.requestId), {
    aggregate: environments,
    streamId: environmentStreamId(spec.name),
    // A definition reads the promotion order: definitions take turns, so two cannot close a cycle.
    ...(typeof command === "function"
      ? {
          prepare: async (tx: pg.PoolClient) => {
            await tx.query("SELECT pg_advisory_xact_lock(hashtext('rdm.promotion_order'))");
          },
        }
      : {}),
    decide: async (state, _ctx, tx) =>
      decideEnvironment(typeof command === "function" ? await command(tx) : command, state),
    project: async (tx, { after }) => {
      if (after.environment) await saveEnvironmentAndQueue(tx, after.environment);
    },
    response: spec.output,
    respond: ({ after }) => create(spec.output, { environment: after.environment } as never) as MessageShape<R>,
    answerIsState: true,
    requestHash: requestFingerprint(method.input, request as never, ctx.principal.subject),
  });
}

export const notFound = (resourceType: string, subject: string) =>
  new RuleViolation("NOT_FOUND", `${resourceType}.unknown`, `no ${resourceType} ${subject}`, {
    subject,
    resourceType,
  });
