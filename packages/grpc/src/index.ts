export { status as GrpcStatus } from "@grpc/grpc-js";
export {
  type ClientStreamRequests,
  createGrpcClient,
  type GrpcClient,
  type GrpcClientOptions,
  type UnaryCallOptions,
} from "./client.js";
export { type ErrorDetails, errorDetails } from "./error-details.js";
export {
  Aborted,
  AlreadyExists,
  ERROR_DOMAIN,
  FailedPrecondition,
  type FieldViolation,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  type PreconditionViolation,
  RpcError,
  STATUS_DETAILS_KEY,
  toStatus,
} from "./errors.js";
export { checkHealth, type ServingStatus } from "./health.js";
export {
  type CallContext,
  type CallHandler,
  type CallRequest,
  type CallResponse,
  EncodedResponse,
  type Interceptor,
  type InterceptorContext,
} from "./interceptor.js";
export { type RequestValidator, requestValidator } from "./interceptors/validate.js";
export { requestFingerprint } from "./request-fingerprint.js";
export { checkRequestInputRules, requestInputViolations } from "./request-input-rules.js";
export { isRuleViolationLike, type RuleViolationLike, ruleViolationError } from "./rule-violation.js";
export {
  type ClientStreamingHandler,
  createGrpcServer,
  type GrpcServer,
  type GrpcServerOptions,
  type ServiceHandlers,
  type ServiceRegistration,
  type UnaryHandler,
} from "./server.js";
export { methodPath } from "./service-definition.js";
