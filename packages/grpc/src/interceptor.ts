import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";
import type { Principal, Role } from "@rdm/auth";
import type { Logger } from "@rdm/observability";

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The authenticated caller; record `principal.subject` as the actor of events. */
  principal: Principal;
  /** Child logger carrying `rpc` and `request_id` (and trace ids inside the server span). */
  logger: Logger;
  /** Incoming metadata, without the `authorization` entry. */
  metadata: Metadata;
  /** W3C traceparent of the server span: store it with events so consumers continue the trace. */
  traceparent: string | undefined;
  /** `x-request-id` from the caller, or a fresh UUID. Correlates log lines of one call. */
  requestId: string;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  method: DescMethod;
  /**
   * The level of the call's log line when it succeeds (default info): a handler lowers it to
   * debug for a routine call that did nothing, such as an idle executor's poll.
   */
  callLogLevel?: "info" | "debug";
}

/**
 * The context while a call passes the interceptors: one object per call, which interceptors
 * may fill in for those after them (the authenticate interceptor sets `principal` and removes
 * `authorization` from `metadata`; the trace interceptor sets `traceparent`). The handler gets
 * it as a `CallContext` once a principal is set.
 */
export interface InterceptorContext extends Omit<CallContext, "principal"> {
  principal: Principal | undefined;
  /** Roles allowed to call the method (admin always is), from the service registration. */
  roles: readonly Role[];
}

type Message = MessageShape<DescMessage>;

/**
 * The request of a call. A unary request is decoded when `message` is first read (bytes that
 * are not the request message throw INVALID_ARGUMENT there), so interceptors that run before
 * anyone reads it (authentication, authorization) answer first.
 */
export type CallRequest =
  | { readonly kind: "unary"; readonly message: Message }
  | { readonly kind: "client_streaming"; readonly messages: AsyncIterable<Message> };

/**
 * A response its handler has already encoded as the method's output message, sent as is: for a
 * large answer written straight to bytes (e.g. from cached fragments) instead of being built as
 * a message and encoded.
 */
export class EncodedResponse<Desc extends DescMessage = DescMessage> {
  constructor(
    readonly schema: Desc,
    readonly bytes: Uint8Array,
  ) {}
}

/** What a handler answers: the output message (or its init shape), or its encoding. */
export type CallResponse = MessageInitShape<DescMessage> | EncodedResponse;

/** The rest of the chain: the next interceptor, and finally the service's handler. */
export type CallHandler = (request: CallRequest, ctx: InterceptorContext) => Promise<CallResponse>;

/**
 * A cross-cutting concern around every call (connect-es style): it gets the rest of the chain
 * and returns a handler that may act before and after it, replace the request, or throw (the
 * server maps what is thrown to a gRPC status). Composed in array order, outermost first.
 */
export type Interceptor = (next: CallHandler) => CallHandler;

/** The first non-empty string value of a metadata key. */
export function firstMetadataValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

export function composeInterceptors(interceptors: readonly Interceptor[], handler: CallHandler): CallHandler {
  return interceptors.reduceRight<CallHandler>((next, interceptor) => interceptor(next), handler);
}
