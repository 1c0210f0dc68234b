import { YearlyKeys } from "@rdm/keys";
import type pg from "pg";
import { releaseKey } from "../domain/release.js";

/** Release keys (REL-2026-0042) from the year's sequence (migration 8), a block at a time. */
export const releaseKeys = (pool: Pick<pg.Pool, "query">, blockSize?: number) =>
  new YearlyKeys(pool, { functionName: "rdm_next_release_number", format: releaseKey, blockSize });
