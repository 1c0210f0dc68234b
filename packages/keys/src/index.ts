import type pg from "pg";

/**
 * The SQL of a migration that numbers keys per year: `functionName(year)` returns the year's
 * next number from the sequence `<sequencePrefix>_<year>`, made on the year's first key. A
 * counter row per year would serialise every command that takes a key on the row's lock until
 * its commit; a sequence hands numbers out without one (gaps are allowed). With `counterTable`
 * (year, last), each year's sequence continues after its counter and the table is dropped.
 */
export function yearlyNumbersSql(functionName: string, sequencePrefix: string, counterTable?: string): string {
  const create = `
      CREATE FUNCTION ${functionName}(key_year int) RETURNS bigint LANGUAGE plpgsql AS $$
      DECLARE
        seq text := format('${sequencePrefix}_%s', key_year);
      BEGIN
        IF to_regclass(seq) IS NULL THEN
          BEGIN
            EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', seq);
          EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL; -- the year's first keys, taken concurrently: the other one created it
          END;
        END IF;
        RETURN nextval(seq::regclass);
      END $$;`;
  if (!counterTable) return create;
  return `${create}
      DO $$
      DECLARE
        counter record;
      BEGIN
        FOR counter IN SELECT year, last FROM ${counterTable} LOOP
          EXECUTE format('CREATE SEQUENCE %I START %s', format('${sequencePrefix}_%s', counter.year), counter.last + 1);
        END LOOP;
      END $$;
      DROP TABLE ${counterTable};`;
}

interface YearBlock {
  numbers: number[];
  refill: Promise<void> | undefined;
}

/**
 * Human-readable keys (REL-2026-0042) from a yearly numbering function made by
 * yearlyNumbersSql, taken a block at a time so a command seldom waits for one. Numbers are
 * unique across instances; a block left unused at shutdown is a gap, which keys allow.
 */
export class YearlyKeys {
  private readonly years = new Map<number, YearBlock>();

  constructor(
    private readonly pool: Pick<pg.Pool, "query">,
    private readonly options: {
      /** The function yearlyNumbersSql made. */
      functionName: string;
      format: (year: number, number: number) => string;
      blockSize?: number;
    },
  ) {}

  async next(year: number): Promise<string> {
    const block = this.years.get(year) ?? { numbers: [], refill: undefined };
    this.years.set(year, block);
    for (;;) {
      const number = block.numbers.shift();
      if (number !== undefined) return this.options.format(year, number);
      // Concurrent commands share one refill.
      block.refill ??= this.refill(year, block).finally(() => {
        block.refill = undefined;
      });
      await block.refill;
    }
  }

  private async refill(year: number, block: YearBlock): Promise<void> {
    const { functionName, blockSize = 20 } = this.options;
    const { rows } = await this.pool.query<{ n: string }>({
      // Named: parsed and planned once per connection.
      name: `${functionName}_block`,
      text: `SELECT ${functionName}($1) AS n FROM generate_series(1, $2)`,
      values: [year, blockSize],
    });
    block.numbers.push(...rows.map((r) => Number(r.n)).sort((a, b) => a - b));
  }
}
