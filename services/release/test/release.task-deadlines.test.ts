// Task deadlines through the durable scheduler, with two replicas on one database: a task still
// open at its due time is reported once (event, notification to its assignee and the
// coordinator, ListReleases filter), and completing it clears the flag. Nothing sleeps: the
// service's clock is the test's.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { waitFor } from "@rdm/testkit";
import pg from "pg";
import { type Harness, type ReleaseClient, registration, req, startHarness } from "./harness.js";

const HOUR = 3_600_000;
let h: Harness;
let db: pg.Client;
let manager: ReleaseClient;

beforeAll(async () => {
  h = await startHarness();
  await h.startInstance(); // a second replica: both schedulers poll the same table
  db = new pg.Client({ connectionString: h.databaseUrl });
  await db.connect();
  manager = await h.client("rita", ["release-manager"]);
});

afterAll(async () => {
  await db?.end();
  await h?.stop();
});

const overdueIds = async () =>
  (await manager.listReleases({ overdueTasksOnly: true, pageSize: 200 })).releases.map((r) => r.releaseId);

test("an open task past its due time is reported once, to its assignee and the coordinator, and cleared when done", async () => {
  const releaseId = (await manager.registerRelease(registration({ coordinator: "carl" }))).release?.releaseId as string;
  const dueAt = new Date(h.clock.current.getTime() + HOUR);
  const { release } = await manager.addReleaseTask({
    ...req(),
    releaseId,
    name: "Smoke tests",
    required: false,
    assignee: "tom",
    dueAt: timestampFromDate(dueAt),
  });
  const taskId = release?.tasks.find((t) => t.name === "Smoke tests")?.taskId as string;
  expect(await overdueIds()).not.toContain(releaseId);

  h.clock.advance(2 * HOUR);
  const fired = await waitFor(async () => {
    const { rows } = await db.query(
      "SELECT outcome FROM release_task_deadlines WHERE release_id = $1 AND task_id = $2 AND fired_at IS NOT NULL",
      [releaseId, taskId],
    );
    return rows[0];
  });
  expect(fired.outcome).toBe("fired");
  // Later rounds of both replicas find nothing more to report for it.
  h.clock.advance(HOUR);
  await waitFor(async () => {
    const { rows } = await db.query(
      "SELECT count(*)::int AS n FROM release_task_deadlines WHERE release_id = $1 AND fired_at IS NULL AND due_at <= $2",
      [releaseId, h.clock.current],
    );
    return rows[0]?.n === 0;
  });
  const { entries } = await manager.getReleaseHistory({ releaseId });
  expect(entries.filter((e) => e.eventType === "rdm.release.v1.ReleaseTaskOverdue")).toHaveLength(1);
  const { deliveries } = await manager.listNotificationDeliveries({ releaseId });
  expect(deliveries.filter((d) => d.trigger === "rdm.release.v1.ReleaseTaskOverdue")).toMatchObject([
    { recipients: ["tom", "carl"] },
  ]);
  const task = async () => (await manager.getRelease({ releaseId })).release?.tasks.find((t) => t.taskId === taskId);
  expect((await task())?.overdue).toBe(true);
  expect(await overdueIds()).toContain(releaseId);

  await manager.completeReleaseTask({ ...req(), releaseId, taskId });
  expect((await task())?.overdue).toBe(false);
  expect(await overdueIds()).not.toContain(releaseId);
});

test("a task's due time is kept to the nanosecond, as given, and reported overdue once it has passed", async () => {
  const releaseId = (await manager.registerRelease(registration({ coordinator: "carl" }))).release?.releaseId as string;
  const seconds = BigInt(Math.floor(h.clock.current.getTime() / 1000) + 3600);
  const dueAt = { seconds, nanos: 123_456_789 };
  const { release } = await manager.addReleaseTask({ ...req(), releaseId, name: "Exact", required: false, dueAt });
  const task = release?.tasks.find((t) => t.name === "Exact");
  expect([task?.dueAt?.seconds, task?.dueAt?.nanos]).toEqual([seconds, 123_456_789]);
  const { release: read } = await manager.getRelease({ releaseId });
  expect(read?.tasks.find((t) => t.name === "Exact")?.dueAt?.nanos).toBe(123_456_789);
  h.clock.advance(2 * HOUR);
  await waitFor(async () => ((await overdueIds()).includes(releaseId) ? true : undefined), {
    timeoutMs: 20_000,
    description: "the task reported overdue",
  });
});
