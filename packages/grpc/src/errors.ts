import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Any, anyPack } from "@bufbuild/protobuf/wkt";
import { status as GrpcStatus, Metadata } from "@grpc/grpc-js";
import { isDatabaseUnavailable, isDataException } from "@rdm/eventstore";
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
 * Most violations an error lists in its message and its details. A status travels in headers,
 * which many gRPC clients cap at 8-16 KB (C-core's Python and C++, Java): an answer listing
 * thousands of them reached such a client as RESOURCE_EXHAUSTED instead of the status. The
 * message says how many were left out.
 */
export const MAX_LISTED_VIOLATIONS = 20;
/** Longest status message sent (characters), for the same reason; a longer one is cut with "…". */
const MAX_MESSAGE_LENGTH = 2_000;

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
    super(GrpcStatus.NOT_FOUND, message, [packDetail(ResourceInfoSchema, { resourceType, resourceName })]);
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
    super(GrpcStatus.FAILED_PRECONDITION, withOmitted(message, violations.length), [
      packDetail(PreconditionFailureSchema, { violations: violations.slice(0, MAX_LISTED_VIOLATIONS) }),
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
    message = describeFieldViolations(fieldViolations),
  ) {
    super(GrpcStatus.INVALID_ARGUMENT, message, [
      packDetail(BadRequestSchema, {
        fieldViolations: fieldViolations.slice(0, MAX_LISTED_VIOLATIONS).map((v) => ({
          field: v.field,
          description: v.description,
          reason: v.reason ?? "",
        })),
      }),
    ]);
    this.name = "InvalidArgument";
  }
}

/** The caller is authenticated but not allowed: PERMISSION_DENIED + ErrorInfo. */
export class PermissionDenied extends RpcError {
  constructor(message: string, reason = "PERMISSION_DENIED", metadata: Record<string, string> = {}) {
    super(GrpcStatus.PERMISSION_DENIED, message, [
      packDetail(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }),
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
      ...(resource ? [packDetail(ResourceInfoSchema, resource)] : []),
      ...(reason ? [packDetail(ErrorInfoSchema, { ...reason, domain: ERROR_DOMAIN })] : []),
    ]);
    this.name = "AlreadyExists";
  }
}

/** A concurrency conflict; the client may retry the whole read-decide-write: ABORTED + ErrorInfo. */
export class Aborted extends RpcError {
  constructor(message: string, reason = "ABORTED", metadata: Record<string, string> = {}) {
    super(GrpcStatus.ABORTED, message, [packDetail(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata })]);
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

function describeFieldViolations(violations: FieldViolation[]): string {
  if (violations.length === 0) return "invalid request";
  const listed = violations.slice(0, MAX_LISTED_VIOLATIONS).map((v) => `${v.field}: ${v.description}`);
  return withOmitted(`invalid request: ${listed.join("; ")}`, violations.length);
}

/** `message`, saying how many of `count` violations its details leave out (MAX_LISTED_VIOLATIONS). */
function withOmitted(message: string, count: number): string {
  const omitted = count - MAX_LISTED_VIOLATIONS;
  return omitted > 0 ? `${message} (and ${omitted} more violations, not listed)` : message;
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
  if (mapped.message.length <= MAX_MESSAGE_LENGTH) return mapped;
  return { ...mapped, message: `${mapped.message.slice(0, MAX_MESSAGE_LENGTH - 1)}…` };
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
    const message = "the client ended the call before its last message";
    return { code: GrpcStatus.CANCELLED, message, details: [], internal: false };
  }
  // A value validation let through but the database cannot store or compare: the caller's input.
  if (isDataException(error)) {
    const message = "a value in the request is malformed or out of range (e.g. it contains a NUL character)";
    return { code: GrpcStatus.INVALID_ARGUMENT, message, details: [], internal: false };
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
