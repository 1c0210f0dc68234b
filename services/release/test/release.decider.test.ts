import { create } from "@bufbuild/protobuf";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ReleasePhase, ReleaseType, RiskLevel } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { decide, fold, type RegisterRelease, type ReleaseEvent, ReleaseRuleViolation } from "../src/domain/release.js";

const register: RegisterRelease = {
  kind: "registerRelease",
  releaseId: "7d0e6f1c-3f55-4b0e-9a43-2d1c9f0b6a11",
  key: "REL-2026-0001",
  title: "Payments 4.2",
  description: "Quarterly payments release",
  type: ReleaseType.MAJOR,
  category: "payments",
  owner: "alice",
  coordinator: "bob",
  stakeholders: ["carol"],
  risk: RiskLevel.MEDIUM,
  plannedWindow: undefined,
};

const given = (...events: ReleaseEvent[]) => ({
  when: (command: RegisterRelease) => {
    const run = () => decide(command, fold(events));
    return {
      thenEvents: (check: (events: ReleaseEvent[]) => void) => check(run()),
      thenFails: (rule: string) => {
        expect(run).toThrow(ReleaseRuleViolation);
        try {
          run();
        } catch (error) {
          expect((error as ReleaseRuleViolation).rule).toBe(rule);
        }
      },
    };
  },
});

describe("RegisterRelease", () => {
  test("registers a new release in the REGISTRATION phase", () => {
    given()
      .when(register)
      .thenEvents(([event, ...rest]) => {
        expect(rest).toHaveLength(0);
        expect(event?.$typeName).toBe("rdm.release.v1.ReleaseRegistered");
        expect(event).toMatchObject({
          releaseId: register.releaseId,
          key: "REL-2026-0001",
          owner: "alice",
          phase: ReleasePhase.REGISTRATION,
        });
      });
  });

  test("refuses to register the same release twice", () => {
    const [registered] = decide(register, fold([]));
    given(registered as ReleaseEvent)
      .when(register)
      .thenFails("release.unique_id");
  });
});

test("the folded state carries the actor and version from the event metadata", () => {
  const [registered] = decide(register, fold([]));
  const withMetadata = {
    ...(registered as ReleaseEvent),
    metadata: create(EventMetadataSchema, { actor: "alice", streamVersion: 1n }),
  };
  const state = fold([withMetadata]);
  expect(state.release).toMatchObject({
    key: "REL-2026-0001",
    registeredBy: "alice",
    version: 1n,
    phase: ReleasePhase.REGISTRATION,
  });
});
