// The kernel's release fold (the release service's and the gateway's) on a task reported overdue:
// flagged by ReleaseTaskOverdue, cleared when the task is done.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as kernelRelease from "../src/release/index.js";

const dueAt = timestampFromDate(new Date(Date.UTC(2026, 11, 1, 10)));
const metadata = (streamVersion: bigint) => ({
  streamVersion,
  actor: "olga",
  occurredAt: timestampFromDate(new Date(Date.UTC(2026, 11, 1, 9, Number(streamVersion)))),
});

test("an overdue task is flagged, then cleared when completed, ", () => {
  const releaseId = randomUUID();
  const events: kernelRelease.ReleaseEvent[] = [
    create(ev.ReleaseRegisteredSchema, {
      metadata: metadata(1n),
      releaseId,
      key: "REL-2026-0001",
      title: "Payments",
      type: ReleaseType.MAJOR,
      owner: "olga",
      phase: ReleasePhase.REGISTRATION,
      model: kernelRelease.STANDARD_MODEL,
    }),
    create(ev.ReleaseTaskAddedSchema, {
      metadata: metadata(2n),
      releaseId,
      task: { taskId: "t1", phase: ReleasePhase.REGISTRATION, phaseEntry: 1, name: "smoke", assignee: "tom", dueAt },
    }),
    create(ev.ReleaseTaskOverdueSchema, { metadata: metadata(3n), releaseId, taskId: "t1", assignee: "tom", dueAt }),
    create(ev.ReleaseTaskCompletedSchema, { metadata: metadata(4n), releaseId, taskId: "t1" }),
  ];
  const flags: boolean[] = [];
  for (let n = 2; n <= events.length; n++) {
    const kernel = kernelRelease.fold(events.slice(0, n));
    flags.push(kernel.release?.tasks[0]?.overdue ?? false);
  }
  expect(flags).toEqual([false, true, false]);
  expect(kernelRelease.fold(events).release?.tasks[0]?.status).toBe(TaskStatus.DONE);
});

test("an overdue task of a phase the release has left is no longer overdue: it can be done no more", () => {
  const releaseId = randomUUID();
  const events: kernelRelease.ReleaseEvent[] = [
    create(ev.ReleaseRegisteredSchema, {
      metadata: metadata(1n),
      releaseId,
      phase: ReleasePhase.REGISTRATION,
      phaseEntry: 1,
      model: kernelRelease.STANDARD_MODEL,
    }),
    create(ev.ReleaseTaskAddedSchema, {
      metadata: metadata(2n),
      releaseId,
      task: { taskId: "t1", phase: ReleasePhase.REGISTRATION, phaseEntry: 1, name: "optional", dueAt },
    }),
    create(ev.ReleaseTaskOverdueSchema, { metadata: metadata(3n), releaseId, taskId: "t1", dueAt }),
    create(ev.ReleasePhaseAdvancedSchema, {
      metadata: metadata(4n),
      releaseId,
      fromPhase: ReleasePhase.REGISTRATION,
      toPhase: ReleasePhase.ASSESSMENT,
      phaseEntry: 1,
    }),
  ];
  expect(kernelRelease.fold(events.slice(0, 3)).release?.tasks[0]?.overdue).toBe(true);
  expect(kernelRelease.fold(events).release?.tasks[0]?.overdue).toBe(false);
});
