// Task deadlines in the release decider: a task still open at its due time is reported once,
// its assignee and the coordinator are told, and completing it clears the flag.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { register, Scenario, T0, types } from "./release-spec.js";

const HOUR = 3_600_000;
const due = new Date(T0.getTime() + HOUR);
const later = new Date(T0.getTime() + 2 * HOUR);

const task = (s: Scenario) => s.release.tasks.find((t) => t.taskId === "t-overdue");

function withTask(dueAt: Date | undefined) {
  const s = new Scenario();
  s.run(register());
  s.run({ kind: "addTask", taskId: "t-overdue", name: "Smoke tests", required: false, assignee: "tom", dueAt });
  return s;
}

test("an open task past its due time is reported once, to its assignee and the coordinator", () => {
  const s = withTask(due);
  const events = s.run({ kind: "markTaskOverdue", taskId: "t-overdue" }, "system:deadline-scheduler", later);
  expect(types(events)).toEqual(["ReleaseTaskOverdue", "ReleaseNotificationRequested"]);
  expect(events[0]).toMatchObject({ taskId: "t-overdue", assignee: "tom", dueAt: timestampFromDate(due) });
  expect(events[1]).toMatchObject({ trigger: "rdm.release.v1.ReleaseTaskOverdue", recipients: ["tom", "carl"] });
  expect(task(s)?.overdue).toBe(true);
  expect(s.refusal({ kind: "markTaskOverdue", taskId: "t-overdue" }, "system:deadline-scheduler", later).rule).toBe(
    "task_deadline.reported_once",
  );
});

test("completing an overdue task clears the flag", () => {
  const s = withTask(due);
  s.run({ kind: "markTaskOverdue", taskId: "t-overdue" }, "system:deadline-scheduler", later);
  s.run({ kind: "completeTask", taskId: "t-overdue" }, "carl", later);
  expect(task(s)).toMatchObject({ status: TaskStatus.DONE, overdue: false });
});

test("not due yet, without a due time, or done: nothing to report", () => {
  expect(withTask(due).refusal({ kind: "markTaskOverdue", taskId: "t-overdue" }, "system", T0).rule).toBe(
    "task_deadline.passed",
  );
  expect(withTask(undefined).refusal({ kind: "markTaskOverdue", taskId: "t-overdue" }, "system", later).rule).toBe(
    "task_deadline.exists",
  );
  const done = withTask(due);
  done.run({ kind: "completeTask", taskId: "t-overdue" }, "carl", T0);
  expect(done.refusal({ kind: "markTaskOverdue", taskId: "t-overdue" }, "system", later).rule).toBe("task.open");
});
