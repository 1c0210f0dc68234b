import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { checkRequestInputRules, InvalidArgument, requestInputViolations } from "../src/index.js";

const register = ReleaseService.method.registerRelease.input;
const addTask = ReleaseService.method.addReleaseTask.input;
const createModel = ReleaseService.method.createReleaseModel.input;
const registerItem = ConfigurationService.method.registerConfigurationItem.input;
const requestId = "8e4c9d1e-0d3c-4a36-9d0e-1f2a3b4c5d6e";

const release = (init: MessageInitShape<typeof register> = {}) =>
  create(register, { requestId, title: "Payments", owner: "olivia", ...init });
const task = (seconds: bigint, nanos = 0) => create(addTask, { requestId, name: "smoke", dueAt: { seconds, nanos } });
const reasons = (violations: { field: string; reason?: string }[]) => violations.map((v) => [v.field, v.reason]);

describe("control characters in text", () => {
  test.each([
    ["NUL", "line1\u0000line2", "U+0000"],
    ["escape", "\u001b[31mred", "U+001B"],
    ["vertical tab", "a\u000Bb", "U+000B"],
    ["unit separator", "a\u001Fb", "U+001F"],
  ])("%s is refused, naming the field and the character", (_name, description, code) => {
    const violations = requestInputViolations(register, release({ description }));
    expect(reasons(violations)).toEqual([["description", "string.no_control_characters"]]);
    expect(violations[0]?.description).toContain(code);
  });

  test("tab, line feed, carriage return and any other Unicode are text", () => {
    const description = "line1\r\n\tline2 \u007f \u0085 \u2028 ünïcødé 🚀 \uFFFD";
    expect(requestInputViolations(register, release({ description }))).toEqual([]);
  });

  test("list items, map keys and map values are checked with their path", () => {
    expect(reasons(requestInputViolations(register, release({ stakeholders: ["ann", "b\u0000b"] })))).toEqual([
      ["stakeholders[1]", "string.no_control_characters"],
    ]);
    const item = create(registerItem, { requestId, name: "db", attributes: { "k\u0001": "v", tier: "\u0002" } });
    expect(reasons(requestInputViolations(registerItem, item))).toEqual([
      ['attributes["k\u0001"]', "string.no_control_characters"],
      ['attributes["tier"]', "string.no_control_characters"],
    ]);
  });

  test("nested messages are walked, every violation is reported", () => {
    const model = create(createModel, {
      requestId,
      model: { name: "m\u0000", phases: [{ tasks: [{ name: "t\u0007" }] }] },
    });
    expect(reasons(requestInputViolations(createModel, model))).toEqual([
      ["model.name", "string.no_control_characters"],
      ["model.phases[0].tasks[0].name", "string.no_control_characters"],
    ]);
  });

  test("a lone surrogate is refused", () => {
    expect(reasons(requestInputViolations(register, release({ title: "Pay\uD800ments" })))).toEqual([
      ["title", "string.well_formed_utf16"],
    ]);
  });
});

describe("timestamps", () => {
  test.each([
    ["0001-01-01T00:00:00Z", -62_135_596_800n, 0],
    ["9999-12-31T23:59:59.999999Z", 253_402_300_799n, 999_999_000],
    ["the Unix epoch", 0n, 0],
  ])("%s is accepted, and protobuf's JSON mapping can write it", (_name, seconds, nanos) => {
    const request = task(seconds, nanos);
    expect(requestInputViolations(addTask, request)).toEqual([]);
    expect(() => toJson(addTask, request)).not.toThrow();
  });

  test.each([
    ["one second before year 1", -62_135_596_801n, 0],
    ["year 10000", 253_402_300_800n, 0],
    ["-2^63 seconds", -(2n ** 63n), 0],
    ["negative nanos", 0n, -1],
    ["a billion nanos", 0n, 1_000_000_000],
    ["9999-12-31T23:59:59.999999999Z, which PostgreSQL would round into year 10000", 253_402_300_799n, 999_999_999],
    ["9999-12-31T23:59:59.9999995Z", 253_402_300_799n, 999_999_500],
  ])("%s is refused with the field", (_name, seconds, nanos) => {
    expect(reasons(requestInputViolations(addTask, task(seconds, nanos)))).toEqual([["due_at", "timestamp.range"]]);
  });

  test("both ends of a window are checked", () => {
    const request = release({
      plannedWindow: { start: { seconds: -62_135_596_801n }, end: { seconds: 253_402_300_800n } },
    });
    expect(reasons(requestInputViolations(register, request))).toEqual([
      ["planned_window.start", "timestamp.range"],
      ["planned_window.end", "timestamp.range"],
    ]);
  });
});

describe("durations", () => {
  const model = (seconds: bigint, nanos = 0) =>
    create(createModel, { requestId, model: { name: "m", phases: [{ deadline: { seconds, nanos } }] } });

  test("protobuf's range is accepted", () => {
    expect(requestInputViolations(createModel, model(315_576_000_000n))).toEqual([]);
    expect(requestInputViolations(createModel, model(-1n, -5))).toEqual([]);
  });

  test.each([
    ["2^62 seconds", 2n ** 62n, 0],
    ["nanos of the other sign", 1n, -1],
    ["a billion nanos", 0n, 1_000_000_000],
  ])("%s is refused with the field", (_name, seconds, nanos) => {
    expect(reasons(requestInputViolations(createModel, model(seconds, nanos)))).toEqual([
      ["model.phases[0].deadline", "duration.range"],
    ]);
  });
});

test("checkRequestInputRules throws INVALID_ARGUMENT with every field violation, and passes a valid request", () => {
  expect(() => checkRequestInputRules(register, release())).not.toThrow();
  let thrown: unknown;
  try {
    checkRequestInputRules(register, release({ title: "a\u0000", description: "b\u0000" }));
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(InvalidArgument);
  expect((thrown as InvalidArgument).fieldViolations.map((v) => v.field)).toEqual(["title", "description"]);
});
