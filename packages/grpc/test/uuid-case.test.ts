import { create } from "@bufbuild/protobuf";
import { ImportRelationshipSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { lowercaseUuids } from "../src/uuid-case.js";

const upper = "8E4C9D1E-0D3C-4A36-9D0E-1F2A3B4C5D6E";
const lower = upper.toLowerCase();

test("string.uuid fields, single and repeated, are lowercased; other text is left as sent", () => {
  const plan = DeploymentService.method.planDeployment.input;
  const request = create(plan, {
    requestId: upper,
    releaseId: upper,
    environment: "Prod-EU",
    artifacts: [{ artifactId: "ART-1", name: "Payments", version: "1.0.0-RC.1" }],
    linkedChangeIds: [upper, lower],
  });
  lowercaseUuids(plan, request);
  expect(request).toMatchObject({
    requestId: lower,
    releaseId: lower,
    environment: "Prod-EU",
    artifacts: [{ artifactId: "ART-1", name: "Payments", version: "1.0.0-RC.1" }],
    linkedChangeIds: [lower, lower],
  });
});

test("UUIDs in nested messages and oneofs are lowercased, and an unset oneof member stays unset", () => {
  const request = create(ImportRelationshipSchema, {
    requestId: upper,
    source: { reference: { case: "registrationRequestId", value: upper } },
    target: { reference: { case: "ciId", value: "HOST-A" } },
  });
  lowercaseUuids(ImportRelationshipSchema, request);
  expect(request.requestId).toBe(lower);
  expect(request.source?.reference).toEqual({ case: "registrationRequestId", value: lower });
  expect(request.target?.reference).toEqual({ case: "ciId", value: "HOST-A" });
});

test("a message without UUID fields is untouched", () => {
  const list = ReleaseService.method.listReleases.input;
  const request = create(list, { owner: "OLIVIA" });
  lowercaseUuids(list, request);
  expect(request.owner).toBe("OLIVIA");
});
