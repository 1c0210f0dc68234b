import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  isMessage,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  type CallOptions,
  type ChannelCredentials,
  Client,
  type ClientWritableStream,
  credentials,
  Metadata,
} from "@grpc/grpc-js";
import { currentTraceparent, inSpan, SpanKind } from "@rdm/observability";
import { WITHOUT_CHANNELZ } from "./channelz.js";
import { methodPath } from "./service-definition.js";

export interface GrpcClientOptions {
  /** Bearer token, or a function returning one per call (e.g. a refreshing dev token). */
  token?: string | (() => string | Promise<string>);
  /** Default: insecure. */
  credentials?: ChannelCredentials;
  /**
   * Calls answered ABORTED (a concurrency conflict the service gave up re-deciding) or
   * UNAVAILABLE (the service or its database away for a moment) are sent again by grpc-js, with
   * exponential backoff, up to `maxAttempts` in all. Safe for every RPC of this platform: a
   * command carries its request id, so a retry that reaches a service which already committed it
   * gets the first answer. Off by default, so callers see the first status.
   */
  retry?: { maxAttempts: number };
}

/** grpc-js's service config: one retry policy for every method of the channel. */
const retryServiceConfig = (maxAttempts: number) =>
  JSON.stringify({
    methodConfig: [
      {
        name: [{}],
        retryPolicy: {
          maxAttempts,
          initialBackoff: "0.05s",
          maxBackoff: "2s",
          backoffMultiplier: 2,
          retryableStatusCodes: ["ABORTED", "UNAVAILABLE"],
        },
      },
    ],
  });

export interface UnaryCallOptions {
  /** Extra metadata, e.g. `x-request-id`. */
  metadata?: Record<string, string>;
  /** Absolute deadline or milliseconds from now. */
  deadline?: Date | number;
  /** Per-call token, overriding the client's. */
  token?: string;
}

/** The messages of a client-streaming call, sent in order; the call half-closes after the last. */
export type ClientStreamRequests<I extends DescMessage> =
  | Iterable<MessageInitShape<I>>
  | AsyncIterable<MessageInitShape<I>>;

export type GrpcClient<M extends GenServiceMethods> = {
  [K in keyof M]: M[K]["methodKind"] extends "unary"
    ? (request: MessageInitShape<M[K]["input"]>, options?: UnaryCallOptions) => Promise<MessageShape<M[K]["output"]>>
    : M[K]["methodKind"] extends "client_streaming"
      ? (
          requests: ClientStreamRequests<M[K]["input"]>,
          options?: UnaryCallOptions,
        ) => Promise<MessageShape<M[K]["output"]>>
      : never;
} & {
  /** Closes the channel. */
  close(): void;
};

/**
 * A typed client with one promise-returning function per unary and client-streaming method
 * (camelCase local name; a client-streaming one takes an iterable of requests).
 * Each call runs in a CLIENT span whose traceparent goes out in the metadata. Failed calls
 * reject with the grpc-js ServiceError; decode its details with errorDetails().
 */
export function createGrpcClient<M extends GenServiceMethods>(
  service: GenService<M>,
  address: string,
  options: GrpcClientOptions = {},
): GrpcClient<M> {
  const channelOptions = {
    ...WITHOUT_CHANNELZ,
    ...(options.retry ? { "grpc.service_config": retryServiceConfig(options.retry.maxAttempts) } : {}),
  };
  const client = new Client(address, options.credentials ?? credentials.createInsecure(), channelOptions);
  const result: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind === "unary") {
      result[method.localName] = (request: MessageInitShape<DescMessage>, callOptions: UnaryCallOptions = {}) =>
        callUnary(client, method, request, options, callOptions);
    } else if (method.methodKind === "client_streaming") {
      result[method.localName] = (requests: ClientStreamRequests<DescMessage>, callOptions: UnaryCallOptions = {}) =>
        callClientStream(client, method, requests, options, callOptions);
    }
  }
  Object.defineProperty(result, "close", { value: () => client.close(), enumerable: false });
  return result as GrpcClient<M>;
}

/** The client span of a call: its kind and the rpc.* attributes. */
const clientSpan = (method: DescMethod) => ({
  kind: SpanKind.CLIENT,
  attributes: { "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name },
});

/** A call's metadata (its metadata, bearer token and traceparent) and grpc-js options (deadline). */
async function callMetadata(options: GrpcClientOptions, callOptions: UnaryCallOptions) {
  const token = callOptions.token ?? (typeof options.token === "function" ? await options.token() : options.token);
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(callOptions.metadata ?? {})) metadata.set(key, value);
  if (token) metadata.set("authorization", `Bearer ${token}`);
  const traceparent = currentTraceparent();
  if (traceparent) metadata.set("traceparent", traceparent);
  const grpcOptions: CallOptions = {};
  if (callOptions.deadline !== undefined) {
    grpcOptions.deadline =
      typeof callOptions.deadline === "number" ? new Date(Date.now() + callOptions.deadline) : callOptions.deadline;
  }
  return { metadata, grpcOptions };
}

/**
 * Streams the requests with backpressure (waits for "drain"), half-closes, and resolves with
 * the single response. If the server answers early (e.g. with an error), sending stops and
 * the call settles with that answer.
 */
function callClientStream(
  client: Client,
  method: DescMethod,
  requests: ClientStreamRequests<DescMessage>,
  options: GrpcClientOptions,
  callOptions: UnaryCallOptions,
): Promise<unknown> {
  const path = methodPath(method);
  return inSpan(path.slice(1), clientSpan(method), async () => {
    const { metadata, grpcOptions } = await callMetadata(options, callOptions);
    let settled = false;
    let call: ClientWritableStream<MessageShape<DescMessage>> | undefined;
    const answered = new Promise<MessageShape<DescMessage>>((resolve, reject) => {
      call = client.makeClientStreamRequest<MessageShape<DescMessage>, MessageShape<DescMessage>>(
        path,
        (value) => Buffer.from(toBinary(method.input, value)),
        (bytes) => fromBinary(method.output, bytes),
        metadata,
        grpcOptions,
        (error, response) => {
          settled = true;
          if (error) reject(error);
          else resolve(response as MessageShape<DescMessage>);
        },
      );
    });
    const stream = call as NonNullable<typeof call>;
    const send = async () => {
      for await (const request of requests as AsyncIterable<MessageInitShape<DescMessage>>) {
        if (settled) return;
        const message = isMessage(request, method.input) ? request : create(method.input, request);
        if (!stream.write(message)) {
          await new Promise<void>((resolve) => {
            stream.once("drain", resolve);
            answered.then(
              () => resolve(),
              () => resolve(),
            );
          });
        }
      }
      if (!settled) stream.end();
    };
    const sending = send().catch((error: unknown) => {
      // The caller's iterable failed: cancel the call so it settles, and report that error.
      stream.cancel();
      throw error;
    });
    const [response] = await Promise.all([answered, sending]);
    return response;
  });
}

function callUnary(
  client: Client,
  method: DescMethod,
  request: MessageInitShape<DescMessage>,
  options: GrpcClientOptions,
  callOptions: UnaryCallOptions,
): Promise<unknown> {
  const path = methodPath(method);
  const message = isMessage(request, method.input) ? request : create(method.input, request);
  return inSpan(path.slice(1), clientSpan(method), async () => {
    const { metadata, grpcOptions } = await callMetadata(options, callOptions);
    return new Promise<MessageShape<DescMessage>>((resolve, reject) => {
      client.makeUnaryRequest<MessageShape<DescMessage>, MessageShape<DescMessage>>(
        path,
        (value) => Buffer.from(toBinary(method.input, value)),
        (bytes) => fromBinary(method.output, bytes),
        message,
        metadata,
        grpcOptions,
        (error, response) => (error ? reject(error) : resolve(response as MessageShape<DescMessage>)),
      );
    });
  });
}
