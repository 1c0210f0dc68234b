import { isRuleViolation, type RuleCondition, RuleViolation, type RuleViolationCode } from "@rdm/command-handler";

export { RuleViolation };
export type RuleDetail = RuleCondition;

/**
 * A domain refusal about a `resourceType` (default "deployment"), listing every unmet condition
 * given. `subject` is the resource's id; "" when the decider does not know it: `decide` fills in
 * the deployment's. A NOT_FOUND names none: the command handler names the missing aggregate.
 */
export const violation = (
  code: RuleViolationCode,
  rule: string,
  message: string,
  conditions: RuleDetail[] = [],
  resourceType = "deployment",
  subject = "",
) => new RuleViolation(code, rule, message, { subject: code === "NOT_FOUND" ? "" : subject, conditions, resourceType });

export const refuse = (rule: string, message: string, resourceType = "deployment", subject = ""): never => {
  throw violation("FAILED_PRECONDITION", rule, message, [], resourceType, subject);
};

/** The refusal naming `subject` where it named none (its conditions too); anything else as it is. */
export function naming(error: unknown, subject: string): unknown {
  if (!isRuleViolation(error) || error.subject !== "" || error.code === "NOT_FOUND") return error;
  return new RuleViolation(error.code, error.rule, error.message, {
    subject,
    conditions: error.conditions.map((condition) => (condition.subject ? condition : { ...condition, subject })),
    resourceType: error.resourceType,
  });
}
