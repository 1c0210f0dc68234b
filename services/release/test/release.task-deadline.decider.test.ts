// Task deadlines in the release decider: a task still open at its due time is reported once,
// its assignee and the coordinator are told, and completing it clears the flag.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type { ReleaseEvent } from "../src/domain/release.js";
import { given, record, register, releaseOf, T0 } from "./release-spec.js";

const HOUR = 3_600_000;
const due = new Date(T0.getTime() + HOUR);
const later = new Date(T0.getTime() + 2 * HOUR);
const overdue = { kind: "markTaskOverdue", taskId: "t-overdue" } as const;

const task = (history: ReleaseEvent[]) => releaseOf(history).tasks.find((t) => t.taskId === "t-overdue");

function withTask(dueAt: Date | undefined): ReleaseEvent[] {
  const history: ReleaseEvent[] = [];
  record(history, register());
  record(history, {
    kind: "addTask",
    taskId: "t-overdue",
    name: "Smoke tests",
    required: false,
    assignee: "tom",
    dueAt: dueAt && timestampFromDate(dueAt),
  });
  return history;
}

test("an open task past its due time is reported once, to its assignee and the coordinator", () => {
  const history = withTask(due);
  const events = given(history).when(overdue, "system:deadline-scheduler", later).events();
  expect(events.map((e) => e.$typeName)).toEqual([
    "rdm.release.v1.ReleaseTaskOverdue",
    "rdm.release.v1.ReleaseNotificationRequested",
  ]);
  expect(events[0]).toMatchObject({ taskId: "t-overdue", assignee: "tom", dueAt: timestampFromDate(due) });
  expect(events[1]).toMatchObject({ trigger: "rdm.release.v1.ReleaseTaskOverdue", recipients: ["tom", "carl"] });
  record(history, overdue, "system:deadline-scheduler", later);
  expect(task(history)?.overdue).toBe(true);
  given(history).when(overdue, "system:deadline-scheduler", later).thenFails("task_deadline.reported_once");
});

test("completing an overdue task clears the flag", () => {
  const history = withTask(due);
  record(history, overdue, "system:deadline-scheduler", later);
  record(history, { kind: "completeTask", taskId: "t-overdue" }, "carl", later);
  expect(task(history)).toMatchObject({ status: TaskStatus.DONE, overdue: false });
});

test("not due yet, without a due time, or done: nothing to report", () => {
  given(withTask(due)).when(overdue, "system", T0).thenFails("task_deadline.passed");
  given(withTask(undefined)).when(overdue, "system", later).thenFails("task_deadline.exists");
  const done = withTask(due);
  record(done, { kind: "completeTask", taskId: "t-overdue" }, "carl", T0);
  given(done).when(overdue, "system", later).thenFails("task.open");
});
