import { randomUUID } from "node:crypto";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type EventStore, withTransaction } from "@rdm/eventstore";
import { AlreadyExists, FailedPrecondition, InvalidArgument, NotFound } from "@rdm/grpc";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { ConfigurationRuleViolation } from "../domain/rule-violation.js";
import { type ConfigurationEvent, decodeConfigurationEvent, encodeConfigurationEvent } from "./event-codec.js";

export function toApiError(error: unknown): unknown {
  if (!(error instanceof ConfigurationRuleViolation)) return error;
  switch (error.code) {
    case "ALREADY_EXISTS":
      return new AlreadyExists(`${error.message} (rule ${error.rule})`);
    case "NOT_FOUND":
      return new NotFound(error.rule.split(".")[0] ?? "resource", error.subject || "", error.message);
    case "INVALID_ARGUMENT":
      return new InvalidArgument([{ field: error.subject, description: error.message, reason: error.rule }]);
    default:
      return new FailedPrecondition(error.message, [
        { type: error.rule, subject: error.subject, description: error.message },
      ]);
  }
}

export interface Actor {
  subject: string;
  requestId: string;
  /** The command or event that caused this one (default: the request id). */
  causationId?: string;
  correlationId?: string;
  traceparent?: string | undefined;
}

export interface CommandDeps {
  store: EventStore;
  pool: pg.Pool;
  clock: () => Date;
}

export interface Command<E extends ConfigurationEvent, R extends DescMessage> {
  /** Stream to decide on; may depend on a lookup (e.g. an artifact by name and version). */
  streamId: (q: pg.Pool) => Promise<string>;
  decide: (history: E[], streamId: string) => Promise<E[]> | E[];
  /** The answer, from the stream after the command (history + new events). */
  respond: (all: E[], recorded: E[]) => MessageShape<R>;
  /** Read-model updates, in the append's transaction. */
  project?: (tx: pg.PoolClient, recorded: E[], all: E[]) => Promise<void>;
  responseSchema: R;
  /** Idempotency: the first response under a request id is returned for every retry. */
  idempotency?: { requestId: string; requestHash: string };
}

export async function readHistory<E extends ConfigurationEvent>(
  store: EventStore,
  streamId: string,
  client?: pg.PoolClient,
): Promise<E[]> {
  const recorded = await store.readStream(streamId, client ? { client } : undefined);
  return recorded.map((event) => decodeConfigurationEvent<E>(event));
}

export function stamp<E extends ConfigurationEvent>(
  events: E[],
  streamId: string,
  from: number,
  actor: Actor,
  occurredAt: Timestamp,
): E[] {
  return events.map((event, index) => ({
    ...event,
    metadata: create(EventMetadataSchema, {
      eventId: randomUUID(),
      occurredAt,
      actor: actor.subject,
      correlationId: actor.correlationId ?? actor.requestId,
      causationId: actor.causationId ?? actor.requestId,
      requestId: actor.requestId,
      streamId,
      streamVersion: BigInt(from + index + 1),
    }),
  }));
}

const MAX_ATTEMPTS = 10;

/**
 * Load, decide, append with the read-model updates in one transaction, answer. A concurrent
 * writer (WrongExpectedVersion, or a unique read-model key taken meanwhile) makes it decide
 * again on fresh state; a retried request id returns the first answer.
 */
export async function executeCommand<E extends ConfigurationEvent, R extends DescMessage>(
  deps: CommandDeps,
  actor: Actor,
  command: Command<E, R>,
): Promise<MessageShape<R>> {
  const replay = async () => {
    if (!command.idempotency) return undefined;
    const previous = await deps.store.getCommandResult(command.idempotency.requestId);
    if (!previous?.response) return undefined;
    if (previous.requestHash !== command.idempotency.requestHash) {
      throw new FailedPrecondition("request_id was already used for a different request", [
        {
          type: "request.idempotency",
          subject: command.idempotency.requestId,
          description: "request_id reused with a different payload",
        },
      ]);
    }
    return fromBinary(command.responseSchema, previous.response);
  };

  for (let attempt = 1; ; attempt++) {
    const replayed = await replay();
    if (replayed) return replayed;
    const streamId = await command.streamId(deps.pool);
    const history = await readHistory<E>(deps.store, streamId);
    let decided: E[];
    try {
      decided = await command.decide(history, streamId);
    } catch (error) {
      // A twin with the same request id may have committed after the check above, so that this
      // decision refused a state already holding its effect: the twin's answer is ours.
      const winner = await replay();
      if (winner) return winner;
      throw toApiError(error);
    }
    if (decided.length === 0) {
      const response = command.respond(history, []);
      if (!command.idempotency) return response;
      const recorded = await deps.store.recordCommandResult(command.idempotency.requestId, {
        requestHash: command.idempotency.requestHash,
        response: toBinary(command.responseSchema, response),
        streamId,
      });
      // Taken meanwhile by a racing retry (or another request): answer as the winner did.
      return recorded ? response : ((await replay()) ?? response);
    }
    const recorded = stamp(decided, streamId, history.length, actor, timestampFromDate(deps.clock()));
    const all = [...history, ...recorded];
    const response = command.respond(all, recorded);
    try {
      await withTransaction(deps.pool, async (tx) => {
        await deps.store.appendToStream(
          streamId,
          history.length === 0 ? "no_stream" : history.length,
          recorded.map((event) => encodeConfigurationEvent(event, actor.traceparent)),
          {
            client: tx,
            ...(command.idempotency
              ? {
                  requestId: command.idempotency.requestId,
                  requestHash: command.idempotency.requestHash,
                  response: toBinary(command.responseSchema, response),
                }
              : {}),
          },
        );
        await command.project?.(tx, recorded, all);
      });
      return response;
    } catch (error) {
      const name = (error as Error).name;
      const code = (error as { code?: string }).code;
      if (name === "DuplicateRequest") {
        const winner = await replay();
        if (winner) return winner;
      }
      const raced = name === "WrongExpectedVersion" || code === "23505";
      if (!raced || attempt >= MAX_ATTEMPTS) throw error;
      // Jittered backoff, so writers racing on one hot stream do not collide in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}
