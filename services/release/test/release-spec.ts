// The release decider on the shared deciderSpec (@rdm/testkit), with the caller's decision
// context and the notifications the decisions trigger, as the API runs it; and builders of
// release histories for `given`.
import { create } from "@bufbuild/protobuf";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { ReleaseType, RiskLevel } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { deciderSpec } from "@rdm/testkit";
import { STANDARD_MODEL } from "../src/domain/models.js";
import { notificationsFor } from "../src/domain/notifications.js";
import {
  type DecisionContext,
  decide,
  evolve,
  fold,
  initialState,
  type RegisterRelease,
  type ReleaseCommand,
  type ReleaseEvent,
  type ReleaseState,
} from "../src/domain/release.js";

export const RELEASE_ID = "7d0e6f1c-3f55-4b0e-9a43-2d1c9f0b6a11";
export const T0 = new Date("2026-03-02T09:00:00Z");

export const register = (
  overrides: Partial<RegisterRelease> = {},
  model: ReleaseModel = STANDARD_MODEL,
): RegisterRelease => ({
  kind: "registerRelease",
  releaseId: RELEASE_ID,
  key: "REL-2026-0001",
  title: "Payments 4.2",
  description: "Quarterly payments release",
  type: ReleaseType.MAJOR,
  category: "payments",
  owner: "olivia",
  coordinator: "carl",
  stakeholders: ["sre-payments"],
  risk: RiskLevel.MEDIUM,
  plannedWindow: undefined,
  model,
  ...overrides,
});

/** Who runs a command: a subject alone (no groups claim), or a subject with its token groups. */
export type Caller = string | { actor: string; groups: readonly string[] };

/** A caller whose token carries `groups`, e.g. `member("ann", "cab")`. */
export const member = (actor: string, ...groups: string[]): Caller => ({ actor, groups });

let ids = 0;
export const context = (caller: Caller = "rita", now = T0): DecisionContext => ({
  ...(typeof caller === "string" ? { actor: caller, groups: [] } : caller),
  now,
  newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`,
});

/** The release decider with its notification policy, as the API runs it. */
export const releaseSpec = deciderSpec({
  decide,
  evolve,
  initialState,
  react: (decided: ReleaseEvent[], before: ReleaseState, ctx: DecisionContext) =>
    notificationsFor(decided, (prefix) => fold(prefix, before), ctx),
});

/**
 * The shared decider spec with the caller's context filled in:
 * `given(history).when(command, caller?, now?)` then `.then(...)` / `.thenFails(rule)`.
 */
export const given = (history: readonly ReleaseEvent[]) => ({
  when: (command: ReleaseCommand, caller: Caller = "rita", now = T0) =>
    releaseSpec.given([...history]).when(command, context(caller, now)),
});

/**
 * Builds a history for `given`: decides `command` on `history`, appends the decided events
 * stamped with actor and stream version like the API does, and returns them.
 */
export function record(history: ReleaseEvent[], command: ReleaseCommand, caller: Caller = "rita", now = T0) {
  const actor = context(caller, now).actor;
  const stamped = given(history)
    .when(command, caller, now)
    .events()
    .map((event, i) => ({
      ...event,
      metadata: create(EventMetadataSchema, { actor, streamVersion: BigInt(history.length + i + 1) }),
    })) as ReleaseEvent[];
  history.push(...stamped);
  return stamped;
}

/** The registered release the history folds to. */
export function releaseOf(history: readonly ReleaseEvent[]) {
  const release = fold([...history]).release;
  if (!release) throw new Error("not registered");
  return release;
}

/** Completes every open required task of the current phase entry. */
export function completeRequiredTasks(history: ReleaseEvent[]) {
  const r = releaseOf(history);
  for (const t of r.tasks.filter(
    (t) => t.required && t.phase === r.phase && t.phaseEntry === r.phaseEntry && t.status !== 3,
  ))
    record(history, { kind: "completeTask", taskId: t.taskId });
}

/** Requests and grants every approval the current phase requires, by distinct members of each group. */
export function grantApprovals(history: ReleaseEvent[]) {
  const { model } = fold(history);
  const phase = model?.phases.find((p) => p.phase === releaseOf(history).phase);
  for (const requirement of phase?.approvals ?? []) {
    const [requested] = record(
      history,
      {
        kind: "requestApproval",
        approvalId: `appr-${requirement.approverGroup}-${history.length}`,
        approverGroup: requirement.approverGroup,
      },
      "carl",
    );
    const approvalId = (requested as { approvalId: string }).approvalId;
    for (let i = 0; i < requirement.quorum; i++)
      record(
        history,
        { kind: "approveRelease", approvalId, comment: "ok" },
        requirement.members[i] ?? member(`approver-${i}`, requirement.approverGroup),
      );
  }
}

/** Meets the current gate (tasks, approvals) and advances to the next phase. */
export function advanceThroughGate(history: ReleaseEvent[]) {
  completeRequiredTasks(history);
  grantApprovals(history);
  return record(history, { kind: "advancePhase", fromPhase: 0, changes: [] });
}

export const types = (events: ReleaseEvent[]) => events.map((e) => e.$typeName.replace("rdm.release.v1.", ""));
