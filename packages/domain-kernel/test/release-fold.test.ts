// fold copies the release once per call, not once per event, and changes it in place: it must give
// what evolve one event after another gives, and leave the events and the given state as they were.
import { randomUUID } from "node:crypto";
import { clone, create, type DescMessage, equals, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseSchema, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as kernelRelease from "../src/release/index.js";

const at = (minute: number) => timestampFromDate(new Date(Date.UTC(2026, 11, 1, 9, minute)));

/** Events with their schemas (to encode them) and metadata numbered in order. */
function numbered(events: [DescMessage, object][]): {
  events: kernelRelease.ReleaseEvent[];
  encode: () => Uint8Array[];
} {
  const made = events.map(([schema, init], i) => ({
    schema,
    event: create(schema, {
      ...init,
      metadata: { streamVersion: BigInt(i + 1), actor: "olga", occurredAt: at(i + 1) },
    }) as kernelRelease.ReleaseEvent,
  }));
  return {
    events: made.map((m) => m.event),
    encode: () => made.map((m) => toBinary(m.schema, m.event as never)),
  };
}

/** A release's life touching what evolve changes in place: tasks, approvals, lists, deadlines. */
function history(releaseId: string) {
  const events: [DescMessage, object][] = [
    [
      ev.ReleaseRegisteredSchema,
      {
        releaseId,
        key: "REL-2026-0042",
        title: "Payments",
        type: ReleaseType.MAJOR,
        owner: "olga",
        stakeholders: ["ana"],
        phase: ReleasePhase.REGISTRATION,
        model: kernelRelease.STANDARD_MODEL,
      },
    ],
    [
      ev.ReleaseTaskAddedSchema,
      {
        releaseId,
        task: { taskId: "t1", phase: ReleasePhase.REGISTRATION, phaseEntry: 1, name: "smoke", dueAt: at(90) },
      },
    ],
    [ev.ReleaseTaskAssignedSchema, { releaseId, taskId: "t1", assignee: "tom" }],
    [ev.ReleaseTaskOverdueSchema, { releaseId, taskId: "t1", assignee: "tom", dueAt: at(90) }],
    [ev.ReleasePlanningUpdatedSchema, { releaseId, title: "Payments v2", coordinator: "cid", stakeholders: ["bo"] }],
    [
      ev.ReleaseApprovalRequestedSchema,
      {
        releaseId,
        approvalId: "a1",
        phase: ReleasePhase.REGISTRATION,
        phaseEntry: 1,
        approverGroup: "cab",
        quorum: 1,
      },
    ],
    // A coordinator named while the approval is pending is added to its ineligible approvers.
    [ev.ReleasePlanningUpdatedSchema, { releaseId, coordinator: "dan" }],
    [ev.ReleaseApprovalGrantedSchema, { releaseId, approvalId: "a1", approver: "eve", comment: "ok" }],
    [ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId: "CHG-1" }],
    [ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId: "CHG-2" }],
    [ev.ReleaseChangeRequestUnlinkedSchema, { releaseId, changeRequestId: "CHG-1" }],
    [ev.ReleaseArtifactAttachedSchema, { releaseId, artifact: { artifactId: "art-1", name: "api", version: "1.0.0" } }],
    [ev.ReleaseArtifactAttachedSchema, { releaseId, artifact: { artifactId: "art-2", name: "web", version: "1.0.0" } }],
    [ev.ReleaseArtifactDetachedSchema, { releaseId, artifactId: "art-1" }],
    [ev.ReleaseDeploymentRecordedSchema, { releaseId, deployment: { deploymentId: "d1", environment: "prod" } }],
    [ev.ReleaseDeadlineMissedSchema, { releaseId, phase: ReleasePhase.REGISTRATION, phaseEntry: 1, dueAt: at(60) }],
    [ev.ReleaseDeadlineEscalatedSchema, { releaseId, phaseEntry: 1 }],
    [ev.ReleaseTaskCompletedSchema, { releaseId, taskId: "t1" }],
    [
      ev.ReleasePhaseAdvancedSchema,
      {
        releaseId,
        fromPhase: ReleasePhase.REGISTRATION,
        toPhase: ReleasePhase.PLANNING,
        phaseEntry: 1,
      },
    ],
  ];
  for (let i = 0; i < 20; i++)
    events.push([ev.ReleaseLogEntryRecordedSchema, { releaseId, entry: { text: `entry ${i}`, recordedBy: "olga" } }]);
  return numbered(events);
}

const byEvolve = (events: kernelRelease.ReleaseEvent[], state = kernelRelease.initialState()) =>
  events.reduce(kernelRelease.evolve, state);
const sameRelease = (a: kernelRelease.ReleaseState, b: kernelRelease.ReleaseState) =>
  a.release && b.release ? equals(ReleaseSchema, a.release, b.release) : a.release === b.release;

test("fold gives what evolve gives, after every prefix of a release's history", () => {
  const { events } = history(randomUUID());
  for (let n = 0; n <= events.length; n++) {
    expect(sameRelease(kernelRelease.fold(events.slice(0, n)), byEvolve(events.slice(0, n)))).toBe(true);
  }
  const folded = kernelRelease.fold(events).release;
  expect(folded?.tasks[0]).toMatchObject({ assignee: "tom", overdue: false });
  expect(folded?.log).toHaveLength(20);
});

test("fold from a state leaves that state and the events as they were", () => {
  const { events, encode } = history(randomUUID());
  const bytes = encode();
  const before = kernelRelease.fold(events.slice(0, 3));
  const beforeCopy = clone(ReleaseSchema, before.release as never);
  const after = kernelRelease.fold(events.slice(3), before);
  expect(sameRelease(after, byEvolve(events.slice(3), before))).toBe(true);
  expect(equals(ReleaseSchema, before.release as never, beforeCopy)).toBe(true);
  expect(encode()).toEqual(bytes);
});

/** Freezes a state as the command handler does under jest: a change in place then throws. */
function deepFreeze(value: unknown): void {
  if (typeof value !== "object" || value === null || Object.isFrozen(value) || ArrayBuffer.isView(value)) return;
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<string | symbol, unknown>)[key]);
}

test("folding on from a state, split anywhere in the history, changes nothing of that state", () => {
  const { events } = history(randomUUID());
  for (let n = 1; n < events.length; n++) {
    const before = kernelRelease.fold(events.slice(0, n));
    const beforeCopy = clone(ReleaseSchema, before.release as never);
    deepFreeze(before);
    const after = kernelRelease.fold(events.slice(n), before);
    expect(sameRelease(after, byEvolve(events))).toBe(true);
    expect(equals(ReleaseSchema, before.release as never, beforeCopy)).toBe(true);
  }
  const released = kernelRelease.fold(events).release;
  expect([released?.approvals[0]?.ineligibleApprovers, released?.linkedChangeRequestIds]).toEqual([
    ["olga", "cid", "dan"],
    ["CHG-2"],
  ]);
  expect(released?.package.map((a) => a.artifactId)).toEqual(["art-2"]);
});
