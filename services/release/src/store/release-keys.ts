import type pg from "pg";
import { releaseKey } from "../domain/release.js";

interface YearBlock {
  numbers: number[];
  refill: Promise<void> | undefined;
}

/**
 * Human-readable release keys (REL-2026-0042) from the year's sequence (rdm_next_release_number),
 * taken a block at a time so a registration seldom waits for one. Numbers are unique across
 * instances; a block left unused at shutdown is a gap, which keys allow.
 */
export class ReleaseKeys {
  private readonly years = new Map<number, YearBlock>();

  constructor(
    private readonly pool: Pick<pg.Pool, "query">,
    private readonly blockSize = 20,
  ) {}

  async next(year: number): Promise<string> {
    const block = this.years.get(year) ?? { numbers: [], refill: undefined };
    this.years.set(year, block);
    for (;;) {
      const number = block.numbers.shift();
      if (number !== undefined) return releaseKey(year, number);
      // Concurrent registrations share one refill.
      block.refill ??= this.refill(year, block).finally(() => {
        block.refill = undefined;
      });
      await block.refill;
    }
  }

  private async refill(year: number, block: YearBlock): Promise<void> {
    const { rows } = await this.pool.query<{ n: string }>({
      name: "rdm_next_release_numbers",
      text: "SELECT rdm_next_release_number($1) AS n FROM generate_series(1, $2)",
      values: [year, this.blockSize],
    });
    block.numbers.push(...rows.map((r) => Number(r.n)).sort((a, b) => a - b));
  }
}
