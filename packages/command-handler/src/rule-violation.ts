import type { Aggregate } from "./command.js";
import type { DomainEvent } from "./event-codec.js";
/** One condition that refused a command: `rule` names it, `subject` says what it is about (a field, for INVALID_ARGUMENT). */
export interface RuleCondition {
  rule: string;
  subject: string;
  description: string;
}

/** How the API reports a refusal (the gRPC code @rdm/grpc answers with). */
export type RuleViolationCode =
  | "FAILED_PRECONDITION"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "INVALID_ARGUMENT";

export interface RuleViolationOptions {
  /** What the rule is about (the resource's id for NOT_FOUND, the field for INVALID_ARGUMENT). */
  subject?: string;
  /** Every unmet condition when there are several; default: the rule itself on `subject`. */
  conditions?: RuleCondition[];
  /** NOT_FOUND: the kind of resource missing (default: the rule up to its first "."). */
  resourceType?: string;
}

/**
 * A domain refusal, thrown by a decider: `rule` names the rule that refused (e.g. "gate.not_met"),
 * `code` says how the API reports it, `conditions` lists what was unmet. @rdm/grpc maps it to a
 * status with google.rpc details (matched by name, so the domain never depends on gRPC).
 */
export class RuleViolation extends Error {
  override readonly name = "RuleViolation";
  readonly subject: string;
  readonly conditions: RuleCondition[];
  readonly resourceType: string;

  constructor(
    readonly code: RuleViolationCode,
    readonly rule: string,
    message: string,
    options: RuleViolationOptions = {},
  ) {
    super(message);
    this.subject = options.subject ?? "";
    this.conditions = options.conditions?.length
      ? options.conditions
      : [{ rule, subject: this.subject, description: message }];
    this.resourceType = options.resourceType ?? rule.split(".")[0] ?? rule;
  }
}

/** A RuleViolation (of `rule`, when given); matched by name, as @rdm/grpc does. */
export const isRuleViolation = (error: unknown, rule?: string): error is RuleViolation =>
  error instanceof Error &&
  error.name === "RuleViolation" &&
  (rule === undefined || (error as RuleViolation).rule === rule);

/**
 * A decider's NOT_FOUND that names no subject is about the commanded stream's own aggregate
 * (absent, or the stream holds another kind's events), whose id a decider does not see in an
 * empty state: the refusal names it then (ResourceInfo's name). A refusal about something within
 * the aggregate (a task, a step) or elsewhere names that itself.
 */
export function namingTheMissing(
  error: unknown,
  aggregate: Pick<Aggregate<unknown, DomainEvent>, "idOf">,
  streamId: string,
): unknown {
  if (!isRuleViolation(error) || error.code !== "NOT_FOUND" || error.subject !== "") return error;
  const subject = aggregate.idOf?.(streamId) ?? streamId;
  return new RuleViolation(error.code, error.rule, error.message, { subject, resourceType: error.resourceType });
}
