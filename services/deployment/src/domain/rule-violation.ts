/** One precondition that refused a command: `rule` names it, `subject` says what it is about. */
export interface RuleDetail {
  rule: string;
  subject: string;
  description: string;
}

/**
 * A domain refusal. `rule` names the rule that refused, `code` says how the API reports it
 * (FAILED_PRECONDITION unless noted), `details` lists every unmet condition when there are several.
 */
export class DeploymentRuleViolation extends Error {
  override readonly name = "DeploymentRuleViolation";
  readonly details: RuleDetail[];
  constructor(
    readonly code: "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "NOT_FOUND" | "PERMISSION_DENIED",
    readonly rule: string,
    message: string,
    details: RuleDetail[] = [],
    readonly subject = "deployment",
  ) {
    super(message);
    this.details = details.length ? details : [{ rule, subject, description: message }];
  }
}

export const refuse = (rule: string, message: string, subject = "deployment"): never => {
  throw new DeploymentRuleViolation("FAILED_PRECONDITION", rule, message, [], subject);
};
