// call.js --print: one field of an answer, also at its default value, which proto3 JSON leaves out.
import { create } from "@bufbuild/protobuf";
import { CheckDeploymentGatesResponseSchema } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { GetReleaseGateResponseSchema } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { answerField } from "../src/answer-field.js";

test("a field at its default value is printed, as a shell loop waiting for it to change expects", () => {
  const closed = create(GetReleaseGateResponseSchema, { phase: ReleasePhase.BUILD_AND_TEST });
  expect(answerField(GetReleaseGateResponseSchema, closed, "open")).toBe("false");
  expect(answerField(GetReleaseGateResponseSchema, closed, "conditions")).toBe("[]");
  expect(answerField(GetReleaseGateResponseSchema, closed, "phase")).toBe("RELEASE_PHASE_BUILD_AND_TEST");
  expect(answerField(GetReleaseGateResponseSchema, create(GetReleaseGateResponseSchema), "phase")).toBe(
    "RELEASE_PHASE_UNSPECIFIED",
  );
  const ready = create(CheckDeploymentGatesResponseSchema, {
    ready: true,
    violations: [{ rule: "gate.target_retired", subject: "production", description: "host-1 is retired" }],
  });
  expect(answerField(CheckDeploymentGatesResponseSchema, ready, "ready")).toBe("true");
  expect(answerField(CheckDeploymentGatesResponseSchema, ready, "violations.0.rule")).toBe("gate.target_retired");
});

test("a message field not set, or a path the answer does not have, is an error showing the answer", () => {
  const answer = create(CheckDeploymentGatesResponseSchema, { ready: false });
  expect(() => answerField(CheckDeploymentGatesResponseSchema, answer, "beginsAt")).toThrow(
    /the answer has no beginsAt:\n\{\n {2}"violations": \[\],\n {2}"ready": false/,
  );
  expect(() => answerField(CheckDeploymentGatesResponseSchema, answer, "violations.0.rule")).toThrow(
    "the answer has no violations.0.rule",
  );
  expect(() => answerField(CheckDeploymentGatesResponseSchema, answer, "ready.deeper")).toThrow(
    "the answer has no ready.deeper",
  );
});
