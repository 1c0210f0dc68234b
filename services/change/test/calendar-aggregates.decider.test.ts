import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ChangeRisk, FreezeScopeSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { EventMetadataSchema, TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { deciderSpec } from "@rdm/testkit";
import {
  decideFreezeWindow,
  evolveFreezeWindow,
  type FreezeWindowCommand,
  foldFreezeWindow,
} from "../src/domain/freeze-window.js";
import {
  decideStandardChangeTemplate,
  evolveStandardChangeTemplate,
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

const freezes = deciderSpec({
  decide: decideFreezeWindow,
  evolve: evolveFreezeWindow,
  initialState: () => ({ freeze: undefined }),
});
const templates = deciderSpec({
  decide: decideStandardChangeTemplate,
  evolve: evolveStandardChangeTemplate,
  initialState: () => ({ template: undefined }),
});

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
    freezes
      .given([])
      .when({ ...declare, window })
      .thenFails("freeze.window_not_empty");
  });

  test("refuses to declare the same freeze twice", () => {
    freezes
      .given(stamp(decideFreezeWindow(declare, { freeze: undefined })))
      .when(declare)
      .thenFails("freeze.unique_id");
  });

  test("lifting marks it lifted; lifting twice is refused", () => {
    const declared = stamp(decideFreezeWindow(declare, { freeze: undefined }));
    const lifted = [
      ...declared,
      ...decideFreezeWindow({ kind: "liftFreeze", reason: "done" }, foldFreezeWindow(declared)),
    ];
    expect(foldFreezeWindow(stamp(lifted)).freeze?.lifted).toBe(true);
    // The lift says what it covered, as declared: subscribers filtering by it hear of it.
    expect(lifted.at(-1)).toMatchObject({ scope: { environments: ["production"] } });
    freezes.given(stamp(lifted)).when({ kind: "liftFreeze", reason: "" }).thenFails("freeze.lift.not_lifted");
  });

  test("lifting an unknown freeze is NOT_FOUND", () => {
    freezes.given([]).when({ kind: "liftFreeze", reason: "" }).thenFails("freeze.exists", "NOT_FOUND");
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
    templates.given(registered).when(register).thenFails("standard_change.template_unique_id");
    const retired = stamp([
      ...registered,
      ...decideStandardChangeTemplate({ kind: "retireTemplate", reason: "obsolete" }, state),
    ]);
    expect(foldStandardChangeTemplate(retired).template?.retired).toBe(true);
    templates.given(retired).when({ kind: "retireTemplate", reason: "" }).thenFails("standard_change.template_active");
  });

  test("retiring an unknown template is refused", () => {
    templates.given([]).when({ kind: "retireTemplate", reason: "" }).thenFails("standard_change.template_exists");
  });
});
