import { type RuleCondition, RuleViolation, type RuleViolationCode } from "@rdm/command-handler";

export { RuleViolation };
export type RuleDetail = RuleCondition;

/** A domain refusal on `subject` (default "deployment"), listing every unmet condition given. */
export const violation = (
  code: RuleViolationCode,
  rule: string,
  message: string,
  conditions: RuleDetail[] = [],
  subject = "deployment",
) =>
  // A NOT_FOUND names no subject: the command handler names the missing aggregate by its id.
  new RuleViolation(code, rule, message, {
    subject: code === "NOT_FOUND" ? "" : subject,
    conditions,
    resourceType: subject,
  });

export const refuse = (rule: string, message: string, subject = "deployment"): never => {
  throw violation("FAILED_PRECONDITION", rule, message, [], subject);
};
