import {
  AlreadyExists,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  type RpcError,
} from "./errors.js";

/**
 * What this package reads of a domain refusal (@rdm/command-handler's RuleViolation), matched by
 * name so that gRPC need not depend on the domain's package.
 */
export interface RuleViolationLike extends Error {
  name: "RuleViolation";
  code: "FAILED_PRECONDITION" | "NOT_FOUND" | "ALREADY_EXISTS" | "PERMISSION_DENIED" | "INVALID_ARGUMENT";
  rule: string;
  subject: string;
  conditions: { rule: string; subject: string; description: string }[];
  resourceType: string;
}

export const isRuleViolationLike = (error: unknown): error is RuleViolationLike =>
  error instanceof Error && error.name === "RuleViolation" && typeof (error as RuleViolationLike).rule === "string";

/** A rule as an ErrorInfo reason: UPPER_SNAKE_CASE (`deployment.exists` → `DEPLOYMENT_EXISTS`). */
const ruleConstant = (rule: string) => rule.toUpperCase().replaceAll(".", "_");

/**
 * The one mapping of a domain refusal to a gRPC status with google.rpc details, the same in
 * every service: FAILED_PRECONDITION + PreconditionFailure (one violation per unmet condition);
 * NOT_FOUND + ResourceInfo (type, subject); ALREADY_EXISTS naming the rule in the message, with
 * ResourceInfo when the refusal names its subject, and PERMISSION_DENIED, + ErrorInfo (the
 * rule as a constant, metadata rule and subject); INVALID_ARGUMENT + BadRequest (one field per condition).
 */
export function ruleViolationError(violation: RuleViolationLike): RpcError {
  const { message, rule, subject, conditions } = violation;
  switch (violation.code) {
    case "NOT_FOUND":
      return new NotFound(violation.resourceType, subject, message);
    case "ALREADY_EXISTS":
      return new AlreadyExists(
        `${message} (rule ${rule})`,
        subject ? { resourceType: violation.resourceType, resourceName: subject } : undefined,
        { reason: ruleConstant(rule), metadata: { rule, subject } },
      );
    case "PERMISSION_DENIED":
      return new PermissionDenied(message, ruleConstant(rule), { rule, subject });
    case "INVALID_ARGUMENT":
      return new InvalidArgument(
        conditions.map((c) => ({ field: c.subject, description: c.description, reason: c.rule })),
      );
    default:
      return new FailedPrecondition(
        message,
        conditions.map((c) => ({ type: c.rule, subject: c.subject, description: c.description })),
      );
  }
}
