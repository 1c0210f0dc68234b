import { create } from "@bufbuild/protobuf";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { requestFingerprint } from "../src/index.js";

describe("requestFingerprint: what request-id idempotency compares", () => {
  const register = ConfigurationService.method.registerConfigurationItem.input;
  const item = (attributes: Record<string, string>) =>
    create(register, { requestId: "8e4c9d1e-0d3c-4a36-9d0e-1f2a3b4c5d6e", name: "db", attributes });

  test("a retry whose map entries arrive in another order is the same request", () => {
    expect(requestFingerprint(register, item({ zone: "eu", tier: "gold" }), "anna")).toBe(
      requestFingerprint(register, item({ tier: "gold", zone: "eu" }), "anna"),
    );
  });

  test("another value, or another RPC with a request that looks alike, is a different request", () => {
    expect(requestFingerprint(register, item({ tier: "gold" }), "anna")).not.toBe(
      requestFingerprint(register, item({ tier: "silver" }), "anna"),
    );
    const start = ChangeService.method.startChangeImplementation.input;
    const complete = ChangeService.method.completeChangeImplementation.input;
    const ids = { requestId: "8e4c9d1e-0d3c-4a36-9d0e-1f2a3b4c5d6e", changeRequestId: "c1" };
    expect(requestFingerprint(start, create(start, ids), "anna")).not.toBe(
      requestFingerprint(complete, create(complete, ids), "anna"),
    );
  });

  test("the same request from another caller is a different request", () => {
    expect(requestFingerprint(register, item({}), "anna")).not.toBe(requestFingerprint(register, item({}), "ben"));
  });
});
