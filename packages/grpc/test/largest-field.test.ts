import { create } from "@bufbuild/protobuf";
import { RuleViolation } from "@rdm/command-handler";
import { ImportItemSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { ReportTargetProgressRequestSchema } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { InvalidArgument } from "../src/errors.js";
import { largestField, namingTheLargestField } from "../src/largest-field.js";

const report = create(ReportTargetProgressRequestSchema, {
  requestId: "11111111-1111-4111-8111-111111111111",
  ciId: "ci-1",
  logLines: ["x".repeat(300), "y".repeat(300)],
});
const largeReport = create(ReportTargetProgressRequestSchema, { ...report, logLines: ["x".repeat(300_000)] });

test("the request's largest field by its proto name; a oneof by the field it holds", () => {
  expect(largestField(ReportTargetProgressRequestSchema, report)).toBe("log_lines");
  const longId = create(ReportTargetProgressRequestSchema, { ...report, ciId: "c".repeat(1000) });
  expect(largestField(ReportTargetProgressRequestSchema, longId)).toBe("ci_id");
  const item = create(ImportItemSchema, {
    item: { case: "registerConfigurationItem", value: { requestId: "11111111-1111-4111-8111-111111111111" } },
  });
  expect(largestField(ImportItemSchema, item)).toBe("register_configuration_item");
  expect(largestField(ImportItemSchema, create(ImportItemSchema))).toBe("");
  expect(largestField(ReportTargetProgressRequestSchema, report, 1000)).toBe("");
});

test("an event.too_large refusal names the largest field when it is large; other refusals pass as they are", async () => {
  const tooLarge = new RuleViolation("INVALID_ARGUMENT", "event.too_large", "the event is 2000000 bytes");
  const refuse = async () => {
    throw tooLarge;
  };
  // A small request: the event is large for what the service adds to it; no field is named.
  const unnamed = await namingTheLargestField(ReportTargetProgressRequestSchema, report, refuse).catch((e) => e);
  expect((unnamed as InvalidArgument).fieldViolations.map((v) => v.field)).toEqual([""]);
  const named = await namingTheLargestField(ReportTargetProgressRequestSchema, largeReport, refuse).catch(
    (e: unknown) => e,
  );
  expect(named).toBeInstanceOf(InvalidArgument);
  expect((named as InvalidArgument).fieldViolations).toEqual([
    { field: "log_lines", description: "the event is 2000000 bytes", reason: "event.too_large" },
  ]);
  const other = new RuleViolation("INVALID_ARGUMENT", "plan.strategy", "no such strategy");
  const passed = await namingTheLargestField(ReportTargetProgressRequestSchema, report, async () => {
    throw other;
  }).catch((e: unknown) => e);
  expect(passed).toBe(other);
  expect(await namingTheLargestField(ReportTargetProgressRequestSchema, report, async () => "answer")).toBe("answer");
});
