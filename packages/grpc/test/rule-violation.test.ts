import { RuleViolation } from "@rdm/command-handler";
import { statusTrailer } from "../src/errors.js";
import { errorDetails, GrpcStatus, toStatus } from "../src/index.js";

/** What a client decodes from the status a handler's thrown value becomes. */
function clientSees(thrown: unknown) {
  const mapped = toStatus(thrown);
  return errorDetails({ code: mapped.code, details: mapped.message, metadata: statusTrailer(mapped) });
}

describe("a domain RuleViolation maps to one gRPC status with google.rpc details, in every service", () => {
  test("FAILED_PRECONDITION: a PreconditionFailure violation per unmet condition", () => {
    const conditions = [
      { rule: "gate.approval", subject: "approval", description: "no approval recorded" },
      { rule: "gate.tasks", subject: "task-1", description: "a required task is open" },
    ];
    const seen = clientSees(
      new RuleViolation("FAILED_PRECONDITION", "gate.not_met", "release cannot leave PLANNING", { conditions }),
    );
    expect(seen.code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect(seen.message).toBe("release cannot leave PLANNING");
    expect(
      seen.preconditionFailure?.violations.map(({ type, subject, description }) => ({ type, subject, description })),
    ).toEqual(conditions.map(({ rule, subject, description }) => ({ type: rule, subject, description })));
  });

  test("FAILED_PRECONDITION without conditions: the rule itself on its subject", () => {
    const seen = clientSees(
      new RuleViolation("FAILED_PRECONDITION", "release.closed", "release is closed", { subject: "r-1" }),
    );
    expect(seen.preconditionFailure?.violations).toMatchObject([
      { type: "release.closed", subject: "r-1", description: "release is closed" },
    ]);
  });

  test("NOT_FOUND: ResourceInfo with the resource type (default: the rule's first part) and the subject", () => {
    expect(
      clientSees(new RuleViolation("NOT_FOUND", "task.exists", "task t-1 not found", { subject: "t-1" })),
    ).toMatchObject({
      code: GrpcStatus.NOT_FOUND,
      message: "task t-1 not found",
      resourceInfo: { resourceType: "task", resourceName: "t-1" },
    });
    expect(
      clientSees(
        new RuleViolation("NOT_FOUND", "freeze.exists", "freeze window not found", {
          subject: "f-1",
          resourceType: "freeze window",
        }),
      ).resourceInfo,
    ).toMatchObject({ resourceType: "freeze window", resourceName: "f-1" });
  });

  test("PERMISSION_DENIED: ErrorInfo with the rule as a constant and rule and subject as metadata", () => {
    const seen = clientSees(
      new RuleViolation("PERMISSION_DENIED", "approval.separation_of_duties", "an owner may not approve", {
        subject: "cab",
      }),
    );
    expect(seen).toMatchObject({
      code: GrpcStatus.PERMISSION_DENIED,
      errorInfo: {
        reason: "APPROVAL_SEPARATION_OF_DUTIES",
        domain: "rdm",
        metadata: { rule: "approval.separation_of_duties", subject: "cab" },
      },
    });
  });

  test("INVALID_ARGUMENT: a BadRequest field violation per condition; ALREADY_EXISTS names the rule in the message and an ErrorInfo, its subject in a ResourceInfo", () => {
    const invalid = clientSees(
      new RuleViolation("INVALID_ARGUMENT", "ci.name", "name is required", { subject: "name" }),
    );
    expect(invalid.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(invalid.badRequest?.fieldViolations).toMatchObject([
      { field: "name", description: "name is required", reason: "ci.name" },
    ]);
    const exists = clientSees(new RuleViolation("ALREADY_EXISTS", "release.exists", "release exists"));
    expect([exists.code, exists.message, exists.resourceInfo]).toEqual([
      GrpcStatus.ALREADY_EXISTS,
      "release exists (rule release.exists)",
      undefined,
    ]);
    // With its subject named, the existing resource is in a ResourceInfo.
    const linked = clientSees(
      new RuleViolation("ALREADY_EXISTS", "change.not_linked", "change request c-1 is already linked", {
        subject: "c-1",
        resourceType: "change request",
      }),
    );
    expect(linked.resourceInfo).toMatchObject({ resourceType: "change request", resourceName: "c-1" });
    // And the rule, for a client to tell one refusal from another without reading the message.
    expect(linked.errorInfo).toMatchObject({
      reason: "CHANGE_NOT_LINKED",
      domain: "rdm",
      metadata: { rule: "change.not_linked", subject: "c-1" },
    });
    expect(exists.errorInfo?.reason).toBe("RELEASE_EXISTS");
  });

  test("an Error of another name is not taken for one", () => {
    const lookalike = Object.assign(new Error("x"), { rule: "a.b", code: "NOT_FOUND" });
    expect(toStatus(lookalike).code).toBe(GrpcStatus.INTERNAL);
  });
});
