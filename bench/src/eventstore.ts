// Event store appends beside their limit and a peer, on one PostgreSQL server in one run (the
// machine is shared and noisy: only ratios within a run compare). Prints figures; asserts nothing.
//   pnpm build && node bench/dist/eventstore.js [seconds per round = 3] [rounds = 3]
// Every contender does the same work: one ~200-byte event per append, a new stream each time,
// with 1 and 16 writers.
// - raw limit: pgbench (Debian's postgresql-client, installed with apt-get when missing) running
//   a one-row INSERT, each its own transaction (INSERT + COMMIT);
// - peer: Emmett 0.42's PostgreSQL event store (@event-driven-io/emmett-postgresql), expecting
//   STREAM_DOES_NOT_EXIST;
// - ours: @rdm/eventstore appendToStream(new stream, "no_stream", [event]).
import { execFileSync, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STREAM_DOES_NOT_EXIST } from "@event-driven-io/emmett";
import { getPostgreSQLEventStore } from "@event-driven-io/emmett-postgresql";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
import { runBenchmark } from "./support.js";

const WRITERS = [1, 16] as const;
const PAYLOAD = "x".repeat(200);

/** pgbench from PATH, installed from Debian's postgresql-client when missing. */
function pgbenchPath(): string {
  const found = spawnSync("sh", ["-c", "command -v pgbench"], { encoding: "utf8" }).stdout.trim();
  if (found) return found;
  console.log("pgbench not found: installing Debian's postgresql-client");
  const apt = (args: string[]) =>
    execFileSync("apt-get", args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  apt(["update", "-qq"]);
  apt(["install", "-y", "-qq", "postgresql-client"]);
  return "pgbench";
}

/** Transactions per second of pgbench running a one-row INSERT (autocommit) with `clients` connections. */
async function rawInsertRate(url: string, clients: number, seconds: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await pool.query("CREATE TABLE IF NOT EXISTS raw_appends (id bigserial PRIMARY KEY, data bytea NOT NULL)");
  await pool.end();
  const dir = mkdtempSync(join(tmpdir(), "rdm-pgbench-"));
  try {
    const script = join(dir, "insert.sql");
    writeFileSync(script, `INSERT INTO raw_appends (data) VALUES (convert_to('${PAYLOAD}', 'UTF8'));\n`);
    const out = execFileSync(
      pgbenchPath(),
      ["-n", "-M", "prepared", "-f", script, "-c", String(clients), "-j", String(clients), "-T", String(seconds), url],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    const tps = /tps = ([\d.]+)/.exec(out)?.[1];
    if (!tps) throw new Error(`pgbench printed no tps:\n${out}`);
    return Number(tps);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Appends/s of `append` called back to back by `writers` concurrent loops for `seconds`. */
async function appendRate(writers: number, seconds: number, append: () => Promise<unknown>): Promise<number> {
  const warmUpEnd = performance.now() + 500;
  while (performance.now() < warmUpEnd) await append();
  const deadline = performance.now() + seconds * 1000;
  let appended = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < deadline) {
        await append();
        appended++;
      }
    }),
  );
  return appended / ((performance.now() - started) / 1000);
}

type Contender = (writers: number, seconds: number) => Promise<number>;

async function emmettContender(url: string): Promise<{ rate: Contender; close: () => Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  const store = getPostgreSQLEventStore(url, { connectionOptions: { pool } });
  await store.schema.migrate();
  return {
    rate: (writers, seconds) =>
      appendRate(writers, seconds, () =>
        store.appendToStream(`bench-${randomUUID()}`, [{ type: "Appended", data: { payload: PAYLOAD } }], {
          expectedStreamVersion: STREAM_DOES_NOT_EXIST,
        }),
      ),
    close: async () => {
      await store.close();
      await pool.end();
    },
  };
}

async function ourContender(url: string): Promise<{ rate: Contender; close: () => Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  await runMigrations(pool, eventStoreMigrations);
  const store = new EventStore(pool);
  const data = new TextEncoder().encode(PAYLOAD);
  return {
    rate: (writers, seconds) =>
      appendRate(writers, seconds, () =>
        store.appendToStream(`bench-${randomUUID()}`, "no_stream", [
          { type: "bench.v1.Appended", data, metadata: { actor: "bench" } },
        ]),
      ),
    close: () => pool.end(),
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const perSecond = (n: number) => `${Math.round(n).toLocaleString("en-US")}/s`.padStart(9);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

async function main() {
  const seconds = Number(process.argv[2] ?? 3);
  const rounds = Number(process.argv[3] ?? 3);
  // The first database starts the server (embedded unless RDM_TEST_DATABASE_URL names one); it
  // stops when this process exits.
  const databases = await Promise.all(["bench_raw", "bench_emmett", "bench_ours"].map((p) => createTestDatabase(p)));
  const [rawDb, emmettDb, oursDb] = databases as [(typeof databases)[0], (typeof databases)[0], (typeof databases)[0]];
  const emmett = await emmettContender(emmettDb.url);
  const ours = await ourContender(oursDb.url);
  const contenders: [string, Contender][] = [
    ["raw", (writers, s) => rawInsertRate(rawDb.url, writers, s)],
    ["emmett", emmett.rate],
    ["ours", ours.rate],
  ];
  // Rounds interleave the contenders, and each figure is the median of its rounds: a burst of
  // load from elsewhere on the machine then spoils one round, not one contender.
  const figures = new Map<string, number>();
  for (const writers of WRITERS) {
    const samples = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [name, rate] of contenders) samples.get(name)?.push(await rate(writers, seconds));
    }
    for (const [name, values] of samples) figures.set(`${name}/${writers}`, median(values));
  }
  await emmett.close();
  await ours.close();

  console.log(
    `\nappends/s, one event per append, a new stream each; median of ${rounds} interleaved rounds of ${seconds} s; one server, one run`,
  );
  console.log("writers |  raw INSERT |     Emmett |  @rdm/eventstore | ours/Emmett | ours/raw | Emmett/raw");
  for (const writers of WRITERS) {
    const [r, e, o] = ["raw", "emmett", "ours"].map((name) => figures.get(`${name}/${writers}`) as number) as [
      number,
      number,
      number,
    ];
    console.log(
      `${String(writers).padStart(7)} | ${perSecond(r)}   | ${perSecond(e)}  | ${perSecond(o)}        | ${ratio(o, e).padStart(11)} | ${ratio(o, r).padStart(8)} | ${ratio(e, r).padStart(10)}`,
    );
  }
  for (const db of databases) await db.drop();
}

runBenchmark(main);
