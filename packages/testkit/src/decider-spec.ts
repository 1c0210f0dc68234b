import { isDeepStrictEqual } from "node:util";

/** What a decider spec runs: a command decided on the state its given events fold to. */
export interface SpecifiedDecider<S, E, C> {
  decide(command: C, state: S): E[];
  evolve(state: S, event: E): S;
  initialState(): S;
}

/** What a refusal is expected to carry (a @rdm/command-handler RuleViolation, matched by name). */
export interface Refusal {
  rule: string;
  code: string;
  subject: string;
  conditions: { rule: string; subject: string; description: string }[];
  message: string;
}

export interface DeciderWhen<E, S = unknown> {
  /** The decided events. Throws what the decider throws. */
  events(): E[];
  /** The decided events equal `expected` (deeply), or pass `check`, which also gets the state they lead to. */
  then(expected: E[] | ((events: E[], after: S) => void)): E[];
  /** The command is refused by `rule` (with `code`, when given); returns the refusal for more checks. */
  thenFails(rule: string, code?: string): Refusal;
}

/**
 * Given / when / then for a decider (as Emmett's DeciderSpecification):
 * `spec.given(events).when(command).then(events)` or `.thenFails(rule)`.
 */
export function deciderSpec<S, E, C>(decider: SpecifiedDecider<S, E, C>) {
  return {
    given: (events: E[]) => ({
      when: (command: C): DeciderWhen<E, S> => {
        const before = () => events.reduce(decider.evolve, decider.initialState());
        const events_ = () => decider.decide(command, before());
        return {
          events: events_,
          // biome-ignore lint/suspicious/noThenProperty: the given/when/then vocabulary of decider specs; never awaited
          then(expected) {
            const decided = events_();
            if (typeof expected === "function") expected(decided, decided.reduce(decider.evolve, before()));
            else if (!isDeepStrictEqual(decided, expected))
              throw new Error(`decided ${describe(decided)}, expected ${describe(expected)}`);
            return decided;
          },
          thenFails(rule, code) {
            let decided: E[];
            try {
              decided = events_();
            } catch (error) {
              const refusal = error as Partial<Refusal> & Error;
              if (!(error instanceof Error) || error.name !== "RuleViolation") throw error;
              if (refusal.rule !== rule)
                throw new Error(`refused by ${refusal.rule}, expected ${rule}: ${error.message}`);
              if (code && refusal.code !== code) throw new Error(`refused with ${refusal.code}, expected ${code}`);
              return refusal as Refusal;
            }
            throw new Error(`accepted (decided ${describe(decided)}), expected a refusal by ${rule}`);
          },
        };
      },
    }),
  };
}

const describe = (events: unknown[]) =>
  `[${events.map((e) => (e as { $typeName?: string }).$typeName ?? JSON.stringify(e)).join(", ")}]`;
