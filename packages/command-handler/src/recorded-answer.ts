import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { CommandResult, EventStore } from "@rdm/eventstore";
import {
  type Aggregate,
  type AnswerSource,
  type ClientCommand,
  foldRecorded,
  type Outcome,
  type Queryable,
  type Snapshot,
} from "./command.js";
import type { DomainEvent, EventCodec } from "./event-codec.js";
import { RuleViolation } from "./rule-violation.js";
import type { StateCache } from "./state-cache.js";

/** Answers made to be recorded with an append, by the outcome they answer. */
const recorded = new WeakMap<object, unknown>();

/** A client command's answer, encoded to be recorded with its append (answerFor gives it again). */
export function answerToRecord<S, E extends DomainEvent, R extends DescMessage>(
  command: ClientCommand<S, E, R>,
  outcome: Outcome<S, E>,
) {
  const answer = command.respond(outcome);
  recorded.set(outcome, answer);
  return toBinary(command.response, answer);
}

/** The answer to a command once appended: the one recorded with it, else made now. */
export const answerFor = <S, E extends DomainEvent, R extends DescMessage>(
  command: ClientCommand<S, E, R>,
  outcome: Outcome<S, E>,
) => (recorded.get(outcome) as MessageShape<R> | undefined) ?? command.respond(outcome);

/** A request id recorded for another request (another body) is refused: FAILED_PRECONDITION. */
export function refuseReusedId(previous: CommandResult, requestId: string, requestHash: string): void {
  if (previous.requestHash === requestHash) return;
  throw new RuleViolation(
    "FAILED_PRECONDITION",
    "request.idempotency",
    "request_id was already used for a different request",
    {
      subject: requestId,
      conditions: [
        {
          rule: "request.idempotency",
          subject: requestId,
          description: "request_id reused by another caller or with a different request",
        },
      ],
    },
  );
}

/** A recorded answer's bytes as the response; reusing the id for another request is refused. */
export function answerOf<R extends DescMessage>(
  previous: CommandResult | null,
  requestId: string,
  command: { response: R; requestHash: string },
): MessageShape<R> | undefined {
  if (!previous) return undefined;
  // Also when the other request's answer was recorded as its stream's version, not as bytes.
  refuseReusedId(previous, requestId, command.requestHash);
  return previous.response ? fromBinary(command.response, previous.response) : undefined;
}

/** What an answer recorded as a version is rebuilt with: the store, its codec, the kept states, a connection. */
interface Rebuild {
  store: EventStore;
  codec: Pick<EventCodec<DomainEvent>, "decode">;
  states: StateCache;
  db: Queryable;
}

/**
 * A request id's recorded answer: its bytes, or, for a command whose answer is its stream's state
 * (answerIsState), that state at the recorded version rebuilt from the stream's events.
 */
export async function recordedAnswer<S, E extends DomainEvent, R extends DescMessage>(
  rebuild: Rebuild,
  previous: CommandResult | null,
  requestId: string,
  command: AnswerSource<S, E, R>,
): Promise<MessageShape<R> | undefined> {
  const { streamId, streamVersion: version } = previous ?? {};
  const { aggregate, respond } = command;
  if (
    !previous ||
    previous.response ||
    !command.answerIsState ||
    !aggregate ||
    !respond ||
    !streamId ||
    version == null
  )
    return answerOf(previous, requestId, command);
  refuseReusedId(previous, requestId, command.requestHash);
  const state = await stateAt(rebuild, aggregate, streamId, version);
  return respond({ streamId, before: state, after: state, events: [], version });
}

/**
 * A stream's state at `version`, folded on from the state the handler kept or the aggregate's
 * snapshot when either is not past it, else from the start.
 */
async function stateAt<S, E extends DomainEvent>(
  { store, codec, states, db }: Rebuild,
  aggregate: Aggregate<S, E>,
  streamId: string,
  version: number,
): Promise<S> {
  const kept = states.get(aggregate, streamId);
  if (kept?.version === version) return kept.state;
  const snapshot = await aggregate.snapshots?.read(streamId, db);
  const start = [kept, snapshot]
    .filter((s): s is Snapshot<S> => s !== undefined && s.version <= version)
    .reduce((a, b) => (b.version > a.version ? b : a), { state: aggregate.initialState(), version: 0 });
  const events = await store.readStream(streamId, {
    client: db,
    fromVersion: start.version + 1,
    limit: version - start.version,
  });
  return foldRecorded(aggregate, codec, events, start.state);
}
