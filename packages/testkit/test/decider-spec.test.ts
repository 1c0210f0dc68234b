import { deciderSpec } from "../src/index.js";

/** Shaped as @rdm/command-handler's RuleViolation, which the spec matches by name. */
class RuleViolation extends Error {
  override readonly name = "RuleViolation";
  readonly subject = "";
  readonly conditions = [];
  constructor(
    readonly code: string,
    readonly rule: string,
  ) {
    super(`refused by ${rule}`);
  }
}

type Added = { added: number };
const spec = deciderSpec<number, Added, { add: number }>({
  initialState: () => 0,
  evolve: (total, event) => total + event.added,
  decide: ({ add }, total) => {
    if (total + add > 10) throw new RuleViolation("FAILED_PRECONDITION", "total.at_most_ten");
    return [{ added: add }];
  },
});

describe("deciderSpec: given(events).when(command).then(events) / thenFails(rule)", () => {
  test("then compares the decided events deeply, or hands them to a check", () => {
    expect(
      spec
        .given([{ added: 4 }])
        .when({ add: 3 })
        .then([{ added: 3 }]),
    ).toEqual([{ added: 3 }]);
    expect(() =>
      spec
        .given([])
        .when({ add: 3 })
        .then([{ added: 4 }]),
    ).toThrow("expected");
    spec
      .given([])
      .when({ add: 2 })
      .then((events, after) => {
        expect(events).toHaveLength(1);
        expect(after).toBe(2);
      });
    spec
      .given([{ added: 5 }])
      .when({ add: 2 })
      .then((_, after) => expect(after).toBe(7));
  });

  test("thenFails passes only on a refusal by that rule (and code), and returns it", () => {
    const given = spec.given([{ added: 6 }, { added: 4 }]);
    expect(given.when({ add: 1 }).thenFails("total.at_most_ten", "FAILED_PRECONDITION").code).toBe(
      "FAILED_PRECONDITION",
    );
    expect(() => given.when({ add: 1 }).thenFails("other.rule")).toThrow("refused by total.at_most_ten");
    expect(() => given.when({ add: 1 }).thenFails("total.at_most_ten", "NOT_FOUND")).toThrow("expected NOT_FOUND");
    expect(() => spec.given([]).when({ add: 1 }).thenFails("total.at_most_ten")).toThrow("accepted");
  });

  test("an error that is not a refusal is thrown as it is", () => {
    const broken = deciderSpec<number, Added, null>({
      initialState: () => 0,
      evolve: (total) => total,
      decide: () => {
        throw new TypeError("bug");
      },
    });
    expect(() => broken.given([]).when(null).thenFails("any")).toThrow(TypeError);
  });

  test("the decision context reaches decide and react; react's policy events follow the decided ones", () => {
    type Said = { said: string; by: string };
    const greeter = deciderSpec<number, Said, string, { actor: string }>({
      initialState: () => 0,
      evolve: (count) => count + 1,
      decide: (word, _count, { actor }) => [{ said: word, by: actor }],
      react: (decided, count, { actor }) => [{ said: `${decided.length} after ${count}`, by: actor }],
    });
    greeter
      .given([{ said: "hi", by: "ann" }])
      .when("hello", { actor: "bob" })
      .then([
        { said: "hello", by: "bob" },
        { said: "1 after 1", by: "bob" },
      ]);
  });

  test("refusal returns the refusal by any rule, and fails when the command is accepted", () => {
    expect(
      spec
        .given([{ added: 10 }])
        .when({ add: 1 })
        .refusal().rule,
    ).toBe("total.at_most_ten");
    expect(() => spec.given([]).when({ add: 1 }).refusal()).toThrow("accepted");
  });
});
