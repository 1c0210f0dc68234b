import { isDeepStrictEqual } from "node:util";

/**
 * What a decider spec runs: a command decided on the state its given events fold to, with the
 * decision context `X` (actor, clock, id source...) when the decider takes one.
 */
export interface SpecifiedDecider<S, E, C, X = undefined> {
  decide(command: C, state: S, context: X): E[];
  evolve(state: S, event: E): S;
  initialState(): S;
  /** Events the decided ones trigger by policy (e.g. notifications), appended after them. */
  react?(decided: E[], before: S, context: X): E[];
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
  /** The command is refused, by whatever rule; returns the refusal. */
  refusal(): Refusal;
}

/**
 * Given / when / then for a decider (as Emmett's DeciderSpecification):
 * `spec.given(events).when(command).then(events)` or `.thenFails(rule)`.
 */
export function deciderSpec<S, E, C, X = undefined>(decider: SpecifiedDecider<S, E, C, X>) {
  return {
    given: (events: E[]) => ({
      when: (command: C, ...[context]: undefined extends X ? [X?] : [X]): DeciderWhen<E, S> => {
        const before = () => events.reduce(decider.evolve, decider.initialState());
        const events_ = () => {
          const state = before();
          const decided = decider.decide(command, state, context as X);
          return decider.react ? [...decided, ...decider.react(decided, state, context as X)] : decided;
        };
        const refusal = (): Refusal => {
          let decided: E[];
          try {
            decided = events_();
          } catch (error) {
            if (!(error instanceof Error) || error.name !== "RuleViolation") throw error;
            return error as Error & Refusal;
          }
          throw new Error(`accepted (decided ${describe(decided)}), expected a refusal`);
        };
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
            const refused = refusal();
            if (refused.rule !== rule)
              throw new Error(`refused by ${refused.rule}, expected ${rule}: ${refused.message}`);
            if (code && refused.code !== code) throw new Error(`refused with ${refused.code}, expected ${code}`);
            return refused;
          },
          refusal,
        };
      },
    }),
  };
}

const describe = (events: unknown[]) =>
  `[${events.map((e) => (e as { $typeName?: string }).$typeName ?? JSON.stringify(e)).join(", ")}]`;
