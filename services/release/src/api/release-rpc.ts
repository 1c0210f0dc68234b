import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type CommandHandler, type CommandOrigin, RuleViolation } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import type { ServiceHandlers } from "@rdm/grpc";
import { type CallContext, EncodedResponse, requestFingerprint } from "@rdm/grpc";
import type { YearlyKeys } from "@rdm/keys";
import type { Release } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import type pg from "pg";
import type { ReleaseCommand, ReleaseState } from "../domain/release.js";
import type { ReleaseServiceEvent } from "../store/event-codec.js";
import type { ReleaseModelStore } from "../store/model-store.js";
import { takeEncodedRelease } from "../store/release-projection.js";
import { lockReleaseReactions, releaseCommand } from "../store/releases.js";

export interface ReleaseApiDeps {
  store: EventStore;
  pool: pg.Pool;
  handler: CommandHandler<ReleaseServiceEvent>;
  models: ReleaseModelStore;
  keys: YearlyKeys;
  clock: () => Date;
}

export type ReleaseHandlers = ServiceHandlers<(typeof api.ReleaseService)["method"]>;

/** One mutating request: its id, the release it addresses, and the command it becomes. */
interface CommandRequest {
  requestId: string;
  releaseId: string;
}

type Method = (typeof api.ReleaseService)["method"];
type Answer<K extends keyof Method> = MessageShape<Method[K]["output"]> | EncodedResponse<Method[K]["output"]>;

/**
 * `{ release }` on the wire from the bytes the command's size check encoded (encodedRelease), not
 * encoded once more: a release may hold 1 MiB. A replayed or no-op answer has none and is encoded
 * as usual.
 */
function onTheWire(
  output: DescMessage,
  response: MessageShape<DescMessage>,
): MessageShape<DescMessage> | EncodedResponse {
  const [field] = output.fields;
  const release = (response as { release?: Release }).release;
  const bytes = release && output.fields.length === 1 && field?.localName === "release" && takeEncodedRelease(release);
  if (!field || !bytes) return response;
  return new EncodedResponse(
    output,
    new BinaryWriter().tag(field.number, WireType.LengthDelimited).bytes(bytes).finish(),
  );
}

/** How the release service's RPCs run commands: through the command handler, answering `{ release }`. */
export function releaseCommandRpc({ handler }: Pick<ReleaseApiDeps, "handler">) {
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
    options: { inReactionTurn?: boolean } = {},
  ): Promise<Answer<K>> {
    const output = method[key].output as DescMessage;
    const answer = handler.handle(originOf(request, ctx), {
      // Decided in a transaction, in the release's turn with the reactions that read other
      // services' facts about it (lockReleaseReactions): each sees what the other committed.
      ...(options.inReactionTurn && {
        prepare: (tx: pg.PoolClient) => lockReleaseReactions(tx, request.releaseId.toLowerCase()),
      }),
      ...releaseCommand(request.releaseId, (state, tx) => {
        if (!state.release && key !== "registerRelease")
          throw new RuleViolation("NOT_FOUND", "release.exists", `release ${request.releaseId} not found`, {
            subject: request.releaseId,
          });
        return toCommand(state, tx);
      }),
      // RegisterRelease names its stream with a new UUID: nothing to read before deciding.
      newStream: key === "registerRelease",
      response: output,
      respond: ({ after }) => create(output, { release: after.release }),
      // The whole release: recorded as the stream's version, rebuilt on a retry (not stored per command).
      answerIsState: true,
      requestHash: requestFingerprint(method[key].input as DescMessage, request, ctx.principal.subject),
    });
    return answer.then((response) => onTheWire(output, response)) as Promise<Answer<K>>;
  }

  /** A handler for a release command RPC; every such RPC answers `{ release }`. */
  const cmd = <K extends keyof typeof method>(
    key: K,
    // biome-ignore lint/suspicious/noExplicitAny: each call site types its own request
    toCommand: (request: any, state: ReleaseState, tx: pg.PoolClient) => ReleaseCommand | Promise<ReleaseCommand>,
    options: { inReactionTurn?: boolean } = {},
  ): never =>
    ((request: CommandRequest & MessageShape<DescMessage>, ctx: CallContext) =>
      execute(key, request, ctx, (state, tx) => toCommand(request, state, tx), options)) as never;

  return { method, originOf, execute, cmd };
}
