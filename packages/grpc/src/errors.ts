import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Any, anyPack } from "@bufbuild/protobuf/wkt";
import { status as GrpcStatus, Metadata } from "@grpc/grpc-js";
import { isDatabaseUnavailable, isDataException, isTransactionCollision } from "@rdm/eventstore";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "@rdm/proto/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "@rdm/proto/gen/google/rpc/status_pb.js";
import { isRuleViolationLike, ruleViolationError } from "./rule-violation.js";

/**
 * A status travels in headers, which many gRPC clients cap at 8 KB (C-core's Python and C++):
 * a larger one reaches such a client as RESOURCE_EXHAUSTED instead of the status. So an error
 * lists at most MAX_LISTED_VIOLATIONS violations, and fewer when their text passes
 * VIOLATIONS_BUDGET_BYTES (the message says how many were left out); each text in the details
 * is cut to DETAIL_TEXT_BYTES; the message to MESSAGE_BUDGET_BYTES as sent (percent-encoded, and
 * again in the details). All told under 6 KB.
 */
export const MAX_LISTED_VIOLATIONS = 20;
const VIOLATIONS_BUDGET_BYTES = 2_000;
const DETAIL_TEXT_BYTES = 300;
const MESSAGE_BUDGET_BYTES = 1_000;

/**
 * Lone surrogates (UTF-16 halves without their pair), which no UTF-8 text can carry: with the u
 * flag a well-formed pair is one code point, so only a lone half matches.
 */
const LONE_SURROGATE = /\p{Surrogate}/gu;

/**
 * `text` with every lone surrogate replaced (U+FFFD), then cut on a code point boundary, with
 * "…", so that `size` of the result is at most `max`. grpc-js percent-encodes the status message
 * with encodeURI, which throws on a lone surrogate (outside any handler: the process ends).
 */
function fitText(text: string, max: number, size: (text: string) => number = utf8Bytes): string {
  const whole = text.replace(LONE_SURROGATE, "\uFFFD");
  if (size(whole) <= max) return whole;
  const points = Array.from(whole);
  let [low, high] = [0, points.length];
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (size(`${points.slice(0, middle).join("")}…`) <= max) low = middle;
    else high = middle - 1;
  }
  return `${points.slice(0, low).join("")}…`;
}

const utf8Bytes = (text: string) => Buffer.byteLength(text, "utf8");
/** The status message as grpc-js sends it (grpc-message: encodeURI) and its length there. */
const encodedBytes = (text: string) => encodeURI(text).length;
const detailText = (text: string) => fitText(text, DETAIL_TEXT_BYTES);
const detailTexts = (texts: Record<string, string>) =>
  Object.fromEntries(Object.entries(texts).map(([key, text]) => [key, detailText(text)]));

/** The first violations whose text fits the budget (one at least), at most MAX_LISTED_VIOLATIONS. */
function listedWithin<T>(violations: T[], texts: (violation: T) => string[]): T[] {
  const listed: T[] = [];
  let bytes = 0;
  for (const violation of violations.slice(0, MAX_LISTED_VIOLATIONS)) {
    bytes += texts(violation).reduce((sum, text) => sum + Math.min(utf8Bytes(text), DETAIL_TEXT_BYTES), 0);
    if (listed.length > 0 && bytes > VIOLATIONS_BUDGET_BYTES) break;
    listed.push(violation);
  }
  return listed;
}

/** Trailer carrying a serialized google.rpc.Status (the gRPC richer error model). */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";
/** ErrorInfo.domain of errors raised by this platform. */
export const ERROR_DOMAIN = "rdm";

export function packDetail<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Any {
  return anyPack(schema, create(schema, init));
}

/**
 * An error with a gRPC status code and google.rpc error details. Throw one of the subclasses
 * from a handler; the server turns it into the status and the `grpc-status-details-bin` trailer.
 */
export class RpcError extends Error {
  constructor(
    readonly code: GrpcStatus,
    message: string,
    readonly details: Any[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RpcError";
  }
}

/** The addressed resource does not exist: NOT_FOUND with a google.rpc.ResourceInfo. */
export class NotFound extends RpcError {
  constructor(resourceType: string, resourceName: string, message = `${resourceType} ${resourceName} not found`) {
    super(GrpcStatus.NOT_FOUND, message, [
      packDetail(ResourceInfoSchema, { resourceType, resourceName: detailText(resourceName) }),
    ]);
    this.name = "NotFound";
  }
}

export interface PreconditionViolation {
  /** The rule that refused, as a constant (e.g. "GATE_NOT_MET", "SEPARATION_OF_DUTIES"). */
  type: string;
  /** What the rule is about, relative to the type (e.g. the gate or condition id). */
  subject: string;
  description: string;
}

/** The system is not in a state that allows the command: FAILED_PRECONDITION + PreconditionFailure. */
export class FailedPrecondition extends RpcError {
  constructor(
    message: string,
    readonly violations: PreconditionViolation[] = [],
  ) {
    const listed = listedWithin(violations, (v) => [v.type, v.subject, v.description]);
    super(GrpcStatus.FAILED_PRECONDITION, withOmitted(message, listed.length, violations.length), [
      packDetail(PreconditionFailureSchema, {
        violations: listed.map((v) => ({
          type: detailText(v.type),
          subject: detailText(v.subject),
          description: detailText(v.description),
        })),
      }),
    ]);
    this.name = "FailedPrecondition";
  }
}

export interface FieldViolation {
  /** Path of the field in the request, e.g. "planned_window.end". */
  field: string;
  description: string;
  /** Constant naming the rule, e.g. a protovalidate rule id ("string.min_len"). */
  reason?: string;
}

/** A client stream the client cancelled or dropped before half-closing it: CANCELLED. */
export class ClientStreamCancelled extends Error {
  constructor() {
    super("the client ended the call before its last message");
  }
}

/** The request itself is wrong: INVALID_ARGUMENT + google.rpc.BadRequest. */
export class InvalidArgument extends RpcError {
  constructor(
    readonly fieldViolations: FieldViolation[],
    message?: string,
  ) {
    const listed = listedWithin(fieldViolations, (v) => [v.field, v.description, v.reason ?? ""]);
    // Without a field to name (bytes that are no request message), no BadRequest: an empty one
    // tells a client nothing the status does not.
    const badRequest = packDetail(BadRequestSchema, {
      fieldViolations: listed.map((v) => ({
        field: detailText(v.field),
        description: detailText(v.description),
        reason: detailText(v.reason ?? ""),
      })),
    });
    super(
      GrpcStatus.INVALID_ARGUMENT,
      message ?? describeFieldViolations(listed, fieldViolations.length),
      listed.length > 0 ? [badRequest] : [],
    );
    this.name = "InvalidArgument";
  }
}

/** The caller is authenticated but not allowed: PERMISSION_DENIED + ErrorInfo. */
export class PermissionDenied extends RpcError {
  constructor(message: string, reason = "PERMISSION_DENIED", metadata: Record<string, string> = {}) {
    super(GrpcStatus.PERMISSION_DENIED, message, [
      packDetail(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata: detailTexts(metadata) }),
    ]);
    this.name = "PermissionDenied";
  }
}

/**
 * The resource to create exists already: ALREADY_EXISTS (+ ResourceInfo when known, + ErrorInfo
 * naming the rule when one refused it).
 */
export class AlreadyExists extends RpcError {
  constructor(
    message: string,
    resource?: { resourceType: string; resourceName: string },
    reason?: { reason: string; metadata: Record<string, string> },
  ) {
    super(GrpcStatus.ALREADY_EXISTS, message, [
      ...(resource
        ? [packDetail(ResourceInfoSchema, { ...resource, resourceName: detailText(resource.resourceName) })]
        : []),
      ...(reason
        ? [packDetail(ErrorInfoSchema, { ...reason, domain: ERROR_DOMAIN, metadata: detailTexts(reason.metadata) })]
        : []),
    ]);
    this.name = "AlreadyExists";
  }
}

/** A concurrency conflict; the client may retry the whole read-decide-write: ABORTED + ErrorInfo. */
export class Aborted extends RpcError {
  constructor(message: string, reason = "ABORTED", metadata: Record<string, string> = {}) {
    super(GrpcStatus.ABORTED, message, [
      packDetail(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata: detailTexts(metadata) }),
    ]);
    this.name = "Aborted";
  }
}

/**
 * The service cannot serve now (its database is away) and a retry later may succeed:
 * UNAVAILABLE + ErrorInfo with the reason + RetryInfo with the delay to wait.
 */
export class Unavailable extends RpcError {
  constructor(message: string, reason: string, retryAfterSeconds = 1) {
    super(GrpcStatus.UNAVAILABLE, message, [
      packDetail(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN }),
      packDetail(RetryInfoSchema, { retryDelay: { seconds: BigInt(retryAfterSeconds) } }),
    ]);
    this.name = "Unavailable";
  }
}

/** The caller could not be authenticated: UNAUTHENTICATED + ErrorInfo with the reason. */
export class Unauthenticated extends RpcError {
  constructor(message: string, reason: string) {
    super(GrpcStatus.UNAUTHENTICATED, message, [
      packDetail(ErrorInfoSchema, { reason: reason.toUpperCase(), domain: ERROR_DOMAIN }),
    ]);
    this.name = "Unauthenticated";
  }
}

function describeFieldViolations(listed: FieldViolation[], count: number): string {
  if (listed.length === 0) return "invalid request";
  const described = listed.map((v) => `${v.field}: ${v.description}`);
  return withOmitted(`invalid request: ${described.join("; ")}`, listed.length, count);
}

/**
 * `message`, saying how many of `count` violations its details leave out; cut so that the
 * saying survives the cut of the whole message (MESSAGE_BUDGET_BYTES).
 */
function withOmitted(message: string, listed: number, count: number): string {
  const omitted = count - listed;
  if (omitted <= 0) return message;
  const suffix = ` (and ${omitted} more violations, not listed)`;
  return `${fitText(message, MESSAGE_BUDGET_BYTES - encodedBytes(suffix), encodedBytes)}${suffix}`;
}

/** Outcome of mapping any thrown value; `internal` marks errors whose real message is hidden. */
export interface MappedStatus {
  code: GrpcStatus;
  message: string;
  details: Any[];
  internal: boolean;
}

/**
 * Maps what a handler threw to a gRPC status. RpcErrors keep their code and details; a domain
 * RuleViolation maps as ruleViolationError says; the event store's WrongExpectedVersion (matched
 * by name, so this package need not depend on it) becomes ABORTED; anything else becomes INTERNAL
 * with a generic message.
 */
export function toStatus(thrown: unknown): MappedStatus {
  const mapped = mapThrown(thrown);
  return { ...mapped, message: fitText(mapped.message, MESSAGE_BUDGET_BYTES, encodedBytes) };
}

function mapThrown(thrown: unknown): MappedStatus {
  const error = isRuleViolationLike(thrown) ? ruleViolationError(thrown) : thrown;
  if (error instanceof RpcError) {
    return { code: error.code, message: error.message, details: error.details, internal: false };
  }
  if (error instanceof Error && error.name === "WrongExpectedVersion") {
    const e = error as Error & { streamId?: unknown; expected?: unknown; actual?: unknown };
    const metadata: Record<string, string> = {};
    if (e.streamId !== undefined) metadata.stream_id = String(e.streamId);
    if (e.expected !== undefined) metadata.expected_version = String(e.expected);
    if (e.actual !== undefined) metadata.actual_version = String(e.actual);
    const aborted = new Aborted(`concurrent modification, retry: ${error.message}`, "WRONG_EXPECTED_VERSION", metadata);
    return { code: aborted.code, message: aborted.message, details: aborted.details, internal: false };
  }
  // The client ended a client stream without half-closing it (reset, cancelled): not our failure.
  if (
    error instanceof ClientStreamCancelled ||
    (error as { code?: unknown } | null)?.code === "ERR_STREAM_PREMATURE_CLOSE"
  ) {
    return { code: GrpcStatus.CANCELLED, message: new ClientStreamCancelled().message, details: [], internal: false };
  }
  // A value validation let through but the database cannot store or compare: the caller's input.
  if (isDataException(error)) {
    const message = "a value in the request is malformed or out of range (e.g. it contains a NUL character)";
    return { code: GrpcStatus.INVALID_ARGUMENT, message, details: [], internal: false };
  }
  // Concurrent transactions collided past the command's own retries (a deadlock broken each
  // time): nothing was written, and the same call again (the same request id) may pass.
  if (isTransactionCollision(error)) {
    const aborted = new Aborted("concurrent transactions collided, retry", "TRANSACTION_COLLISION");
    return { code: aborted.code, message: aborted.message, details: aborted.details, internal: false };
  }
  // The database is gone for now: the client may retry (with the same request id) later.
  if (isDatabaseUnavailable(error)) {
    return { code: GrpcStatus.UNAVAILABLE, message: "database unavailable, retry later", details: [], internal: false };
  }
  return { code: GrpcStatus.INTERNAL, message: "internal error", details: [], internal: true };
}

/** Metadata with the `grpc-status-details-bin` trailer for a status. */
export function statusTrailer(mapped: { code: GrpcStatus; message: string; details: Any[] }): Metadata {
  const trailer = new Metadata();
  if (mapped.details.length > 0) {
    const statusMessage = create(StatusSchema, { code: mapped.code, message: mapped.message, details: mapped.details });
    trailer.set(STATUS_DETAILS_KEY, Buffer.from(toBinary(StatusSchema, statusMessage)));
  }
  return trailer;
}
