import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RuleViolation } from "@rdm/command-handler";
import { ChangeRisk, FreezeScopeSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { EventMetadataSchema, TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { decideFreezeWindow, type FreezeWindowCommand, foldFreezeWindow } from "../src/domain/freeze-window.js";
import {
  decideStandardChangeTemplate,
  foldStandardChangeTemplate,
  type StandardChangeTemplateCommand,
} from "../src/domain/standard-change-template.js";

const at = (iso: string) => timestampFromDate(new Date(iso));
const declare: FreezeWindowCommand = {
  kind: "declareFreeze",
  freezeWindowId: "f-1",
  name: "Year-end freeze",
  reason: "peak trading",
  window: create(TimeWindowSchema, { start: at("2026-12-20T00:00:00Z"), end: at("2027-01-02T00:00:00Z") }),
  scope: create(FreezeScopeSchema, { environments: ["production"] }),
};

function rule(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RuleViolation);
    return (error as RuleViolation).rule;
  }
  throw new Error("expected a refusal");
}

const stamp = <T extends { metadata?: unknown }>(events: T[]) =>
  events.map((event, index) => ({
    ...event,
    metadata: create(EventMetadataSchema, { streamVersion: BigInt(index + 1), actor: "cm" }),
  }));

describe("freeze windows", () => {
  test("declaring records the window, scope and declarer", () => {
    const events = stamp(decideFreezeWindow(declare, { freeze: undefined }));
    expect(foldFreezeWindow(events).freeze).toMatchObject({
      freezeWindowId: "f-1",
      name: "Year-end freeze",
      scope: { environments: ["production"], all: false },
      lifted: false,
      declaredBy: "cm",
    });
  });

  test("refuses an empty window", () => {
    const window = create(TimeWindowSchema, { start: at("2026-12-20T00:00:00Z"), end: at("2026-12-20T00:00:00Z") });
    expect(rule(() => decideFreezeWindow({ ...declare, window }, { freeze: undefined }))).toBe(
      "freeze.window_not_empty",
    );
  });

  test("refuses to declare the same freeze twice", () => {
    const state = foldFreezeWindow(stamp(decideFreezeWindow(declare, { freeze: undefined })));
    expect(rule(() => decideFreezeWindow(declare, state))).toBe("freeze.unique_id");
  });

  test("lifting marks it lifted; lifting twice is refused", () => {
    const declared = stamp(decideFreezeWindow(declare, { freeze: undefined }));
    const lifted = [
      ...declared,
      ...decideFreezeWindow({ kind: "liftFreeze", reason: "done" }, foldFreezeWindow(declared)),
    ];
    const state = foldFreezeWindow(stamp(lifted));
    expect(state.freeze?.lifted).toBe(true);
    expect(rule(() => decideFreezeWindow({ kind: "liftFreeze", reason: "" }, state))).toBe("freeze.lift.not_lifted");
  });

  test("lifting an unknown freeze is NOT_FOUND", () => {
    expect(rule(() => decideFreezeWindow({ kind: "liftFreeze", reason: "" }, { freeze: undefined }))).toBe(
      "freeze.exists",
    );
  });
});

describe("standard change templates", () => {
  const register: StandardChangeTemplateCommand = {
    kind: "registerTemplate",
    templateId: "t-1",
    name: "Rotate TLS certificate",
    description: "",
    implementationPlan: "rotate",
    testPlan: "check",
    backoutPlan: "restore",
    risk: ChangeRisk.LOW,
  };

  test("registers, then retires once", () => {
    const registered = stamp(decideStandardChangeTemplate(register, { template: undefined }));
    const state = foldStandardChangeTemplate(registered);
    expect(state.template).toMatchObject({ name: "Rotate TLS certificate", retired: false, registeredBy: "cm" });
    expect(rule(() => decideStandardChangeTemplate(register, state))).toBe("standard_change.template_unique_id");
    const retired = foldStandardChangeTemplate(
      stamp([...registered, ...decideStandardChangeTemplate({ kind: "retireTemplate", reason: "obsolete" }, state)]),
    );
    expect(retired.template?.retired).toBe(true);
    expect(rule(() => decideStandardChangeTemplate({ kind: "retireTemplate", reason: "" }, retired))).toBe(
      "standard_change.template_active",
    );
  });

  test("retiring an unknown template is refused", () => {
    expect(
      rule(() => decideStandardChangeTemplate({ kind: "retireTemplate", reason: "" }, { template: undefined })),
    ).toBe("standard_change.template_exists");
  });
});
