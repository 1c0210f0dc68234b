import { fromBinary } from "@bufbuild/protobuf";
import { anyIs, anyUnpack } from "@bufbuild/protobuf/wkt";
import type { status as GrpcStatus, Metadata } from "@grpc/grpc-js";
import {
  type BadRequest,
  BadRequestSchema,
  type ErrorInfo,
  ErrorInfoSchema,
  type PreconditionFailure,
  PreconditionFailureSchema,
  type ResourceInfo,
  ResourceInfoSchema,
  type RetryInfo,
  RetryInfoSchema,
} from "@rdm/proto/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "@rdm/proto/gen/google/rpc/status_pb.js";
import { STATUS_DETAILS_KEY } from "./errors.js";

/** A gRPC error with its google.rpc details decoded. */
export interface ErrorDetails {
  code: GrpcStatus;
  message: string;
  badRequest?: BadRequest;
  preconditionFailure?: PreconditionFailure;
  errorInfo?: ErrorInfo;
  resourceInfo?: ResourceInfo;
  retryInfo?: RetryInfo;
}

/**
 * Decodes the `grpc-status-details-bin` trailer of an error returned by a gRPC call (a grpc-js
 * ServiceError). Throws when `error` is not a gRPC error, so a test cannot silently pass on a
 * non-gRPC failure.
 */
export function errorDetails(error: unknown): ErrorDetails {
  const e = error as { code?: unknown; details?: unknown; metadata?: Metadata } | null;
  if (!e || typeof e.code !== "number") throw new Error(`not a gRPC error: ${String(error)}`, { cause: error });
  const result: ErrorDetails = { code: e.code as GrpcStatus, message: typeof e.details === "string" ? e.details : "" };
  const raw = e.metadata?.get(STATUS_DETAILS_KEY)[0];
  if (!raw || typeof raw === "string") return result;
  const status = fromBinary(StatusSchema, raw);
  if (status.message) result.message = status.message;
  for (const detail of status.details) {
    if (anyIs(detail, BadRequestSchema)) result.badRequest = anyUnpack(detail, BadRequestSchema);
    else if (anyIs(detail, PreconditionFailureSchema))
      result.preconditionFailure = anyUnpack(detail, PreconditionFailureSchema);
    else if (anyIs(detail, ErrorInfoSchema)) result.errorInfo = anyUnpack(detail, ErrorInfoSchema);
    else if (anyIs(detail, ResourceInfoSchema)) result.resourceInfo = anyUnpack(detail, ResourceInfoSchema);
    else if (anyIs(detail, RetryInfoSchema)) result.retryInfo = anyUnpack(detail, RetryInfoSchema);
  }
  return result;
}
