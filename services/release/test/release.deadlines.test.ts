// Phase deadlines through the durable scheduler, with two replicas on one database and a
// restart: each missed deadline yields exactly one ReleaseDeadlineMissed, then one escalation;
// and a read on one replica sees what the other appended.
// The service's clock is the test's, so nothing sleeps.
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { LogEntryKind, ReleasePhase, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { waitFor } from "@rdm/testkit";
import pg from "pg";
import { type Harness, type ReleaseClient, registration, req, startHarness } from "./harness.js";

const HOUR = 3600_000;
const DAY = 24 * HOUR;
let h: Harness;
let db: pg.Client;

beforeAll(async () => {
  h = await startHarness();
  await h.startInstance(); // a second replica on the same database
  db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await h?.stop();
});

async function countEvents(type: string): Promise<Map<string, number>> {
  const { rows } = await db.query<{ stream_id: string; n: number }>(
    "SELECT stream_id, count(*)::int AS n FROM events WHERE type = $1 GROUP BY stream_id",
    [`rdm.release.v1.${type}`],
  );
  return new Map(rows.map((r) => [r.stream_id, r.n]));
}

/** Unfired deadlines of the releases' first phase entry (REGISTRATION). */
const unfired = async (kind: string, ids: string[]) =>
  (
    await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM release_deadlines
       WHERE kind = $1 AND release_id = ANY($2) AND phase_entry = 1 AND fired_at IS NULL`,
      [kind, ids],
    )
  ).rows[0]?.n;

async function advance(client: ReleaseClient, releaseId: string) {
  const { release } = await client.getRelease({ releaseId });
  for (const t of release?.tasks ?? [])
    if (t.required && t.status !== TaskStatus.DONE)
      await client.completeReleaseTask({ ...req(), releaseId, taskId: t.taskId });
  await client.advanceReleasePhase({ ...req(), releaseId });
}

test("GetRelease on one replica shows what another appended after this one's last command", async () => {
  const [a, b] = h.instances;
  const onA = await h.client("rita", ["release-manager"], { instance: a });
  const onB = await h.client("rita", ["release-manager"], { instance: b });
  // A keeps the release's state as its command left it; B appends after it.
  const { release } = await onA.registerRelease(registration({ title: "Read on both replicas" }));
  const releaseId = release?.releaseId as string;
  const logged = await onB.recordReleaseLogEntry({ ...req(), releaseId, kind: LogEntryKind.ISSUE, text: "from B" });
  expect(logged.release?.log.map((e) => e.text)).toEqual(["from B"]);
  expect((await onA.getRelease({ releaseId })).release).toEqual(logged.release);
});

test("a missed deadline is reported once with two replicas, escalated once, and never again after a restart", async () => {
  const [a, b] = h.instances;
  const clients = [
    await h.client("rita", ["release-manager"], { instance: a }),
    await h.client("rita", ["release-manager"], { instance: b }),
  ];
  const manager = clients[0] as ReleaseClient;
  const start = h.clock.current.getTime();

  const late: string[] = [];
  for (let i = 0; i < 12; i++) {
    const { release } = await (clients[i % 2] as ReleaseClient).registerRelease(
      registration({ title: `Deadline ${i}`, modelVersion: 1 }),
    );
    late.push(release?.releaseId as string);
  }
  // One release leaves REGISTRATION in time; its next deadline is later than the clock will be.
  h.clock.advance(HOUR);
  const onTime = late.pop() as string;
  await advance(manager, onTime);

  h.clock.current = new Date(start + 5 * DAY + 60_000);
  await waitFor(async () => (await unfired("missed", [...late, onTime])) === 0, {
    timeoutMs: 20_000,
    description: "every due registration deadline handled",
  });
  let missed = await countEvents("ReleaseDeadlineMissed");
  for (const id of late) expect(missed.get(id)).toBe(1);
  expect(missed.get(onTime)).toBeUndefined();
  const { rows: skipped } = await db.query("SELECT outcome FROM release_deadlines WHERE release_id = $1", [onTime]);
  expect(skipped.map((r) => r.outcome)).toContain("skipped: deadline.phase_current");

  const { release } = await manager.getRelease({ releaseId: late[0] as string });
  expect(release?.deadlineMisses).toEqual([
    expect.objectContaining({ phase: ReleasePhase.REGISTRATION, phaseEntry: 1, escalated: false }),
  ]);
  const overdue = (await manager.listReleases({ overdueOnly: true, pageSize: 200 })).releases.map((r) => r.releaseId);
  expect(overdue).toEqual(expect.arrayContaining(late));
  expect(overdue).not.toContain(onTime);

  // The escalation follows after the model's grace period (one day for the standard model).
  h.clock.advance(DAY);
  await waitFor(
    async () =>
      (await unfired("escalation", late)) === 0 && (await countEvents("ReleaseDeadlineEscalated")).size >= late.length,
    {
      timeoutMs: 20_000,
      description: "every escalation handled",
    },
  );

  // Restart: both replicas stop, a new instance takes over the same database.
  await a?.stop();
  await b?.stop();
  const c = await h.startInstance();
  const fresh = await h.client("rita", ["release-manager"], { instance: c });
  const { release: later } = await fresh.registerRelease(registration({ title: "After restart", modelVersion: 1 }));
  h.clock.advance(6 * DAY);
  await waitFor(async () => (await countEvents("ReleaseDeadlineMissed")).get(later?.releaseId as string) === 1, {
    timeoutMs: 20_000,
    description: "the new instance reports a deadline missed after the restart",
  });
  // The on-time release's ASSESSMENT deadline has now passed too: reported for its phase entry 2.
  await waitFor(async () => (await countEvents("ReleaseDeadlineMissed")).get(onTime) === 1, {
    timeoutMs: 20_000,
    description: "the on-time release's next deadline",
  });

  missed = await countEvents("ReleaseDeadlineMissed");
  const escalated = await countEvents("ReleaseDeadlineEscalated");
  for (const id of late) {
    expect(missed.get(id)).toBe(1);
    expect(escalated.get(id)).toBe(1);
  }
  const { entries } = await fresh.getReleaseHistory({ releaseId: late[0] as string });
  const missedEntry = entries.find((e) => e.eventType === "rdm.release.v1.ReleaseDeadlineMissed");
  expect(missedEntry?.actor).toBe("system:deadline-scheduler");
  // History tells domain time (the service's clock, days ahead of the wall clock here).
  expect(timestampDate(missedEntry?.occurredAt as Timestamp).getTime()).toBeGreaterThanOrEqual(start + 5 * DAY);
});
