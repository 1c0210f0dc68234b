import { create } from "@bufbuild/protobuf";
import { ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  DeclareFreezeWindowRequestSchema,
  RaiseChangeRequestSchema,
  ScheduleChangeRequestSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import {
  CreateSubscriptionRequestSchema,
  UpdateSubscriptionRequestSchema,
} from "@rdm/proto/gen/rdm/notification/v1/notification_service_pb.js";
import { requestValidator } from "../src/index.js";

const requestId = "0b7e6c2a-6f1e-4d5e-9a0b-2b1f3c4d5e6f";

test("a rule of the request message itself names the field it is about in BadRequest, not an empty path", async () => {
  const check = await requestValidator();
  const violations = (schema: Parameters<typeof check>[0], init: Record<string, unknown>) =>
    check(schema, create(schema, init as never)).map((v) => [v.field, v.reason]);
  // By its id: `secret.…`.
  expect(
    violations(CreateSubscriptionRequestSchema, {
      requestId,
      name: "ops",
      target: { kind: { case: "webhook", value: { url: "https://hooks.example.com/rdm" } } },
      secret: "short",
    }),
  ).toEqual([["secret", "secret.webhook"]]);
  expect(violations(UpdateSubscriptionRequestSchema, { requestId, secret: "short" })).toContainEqual([
    "secret",
    "secret.length",
  ]);
  // By the one field its expression reads.
  expect(
    violations(ScheduleChangeRequestSchema, {
      requestId,
      changeRequestId: requestId,
      window: { start: { seconds: 1_800_000_000n } },
    }),
  ).toEqual([["window", "schedule_change.window_bounded"]]);
  expect(
    violations(DeclareFreezeWindowRequestSchema, {
      requestId,
      name: "quarter end",
      window: { start: { seconds: 1_800_000_000n }, end: { seconds: 1_800_003_600n } },
      scope: {},
    }),
  ).toEqual([["scope", "declare_freeze.scope_not_empty"]]);
  // A rule between two fields (type and template_id): the one its message names.
  expect(
    violations(RaiseChangeRequestSchema, {
      requestId,
      type: ChangeType.STANDARD,
      title: "Rotate certificates",
    }),
  ).toContainEqual(["template_id", "raise_change.standard_needs_template"]);
  expect(
    violations(RaiseChangeRequestSchema, {
      requestId,
      type: ChangeType.NORMAL,
      title: "Rotate certificates",
      templateId: "cert-rotation",
    }),
  ).toContainEqual(["template_id", "raise_change.template_only_for_standard"]);
});
