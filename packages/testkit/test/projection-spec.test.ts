import type pg from "pg";
import { projectionSpec } from "../src/index.js";

type Deposited = { account: string; amount: number };

/** A balance per account; a negative deposit is refused by a CHECK constraint. */
const balances = projectionSpec<Deposited>({
  setup: async (client: pg.PoolClient) => {
    await client.query("CREATE TABLE balance (account text PRIMARY KEY, amount int NOT NULL CHECK (amount >= 0))");
  },
  apply: async ({ account, amount }, tx) => {
    await tx.query(
      `INSERT INTO balance (account, amount) VALUES ($1, $2)
       ON CONFLICT (account) DO UPDATE SET amount = balance.amount + EXCLUDED.amount`,
      [account, amount],
    );
  },
});

const rows = "SELECT account, amount FROM balance ORDER BY account";

describe("projectionSpec: given(events).when(event).then(query, rows) against PostgreSQL", () => {
  test("then compares the rows the query returns after the given events and the new one", async () => {
    await expect(
      balances
        .given([
          { account: "a", amount: 2 },
          { account: "b", amount: 1 },
        ])
        .when({ account: "a", amount: 3 })
        .then(rows, [
          { account: "a", amount: 5 },
          { account: "b", amount: 1 },
        ]),
    ).resolves.toHaveLength(2);
  });

  test("then fails when the rows differ, naming both", async () => {
    await expect(
      balances
        .given([])
        .when({ account: "a", amount: 3 })
        .then(rows, [{ account: "a", amount: 4 }]),
    ).rejects.toThrow('rows [{"account":"a","amount":3}], expected [{"account":"a","amount":4}]');
  });

  test("thenThrows passes only when applying fails with that message", async () => {
    const refused = balances.given([{ account: "a", amount: 1 }]).when({ account: "a", amount: -2 });
    await expect(refused.thenThrows("balance_amount_check")).resolves.toBeInstanceOf(Error);
    await expect(refused.thenThrows("another message")).rejects.toThrow("balance_amount_check");
    await expect(balances.given([]).when({ account: "a", amount: 1 }).thenThrows("check")).rejects.toThrow(
      "every event was applied",
    );
  });

  test("each run has a database of its own: a run never sees another's rows", async () => {
    const [first, second] = await Promise.all([
      balances
        .given([])
        .when({ account: "a", amount: 1 })
        .then(rows, [{ account: "a", amount: 1 }]),
      balances
        .given([])
        .when({ account: "b", amount: 2 })
        .then(rows, [{ account: "b", amount: 2 }]),
    ]);
    expect([first, second]).toEqual([[{ account: "a", amount: 1 }], [{ account: "b", amount: 2 }]]);
  });
});
