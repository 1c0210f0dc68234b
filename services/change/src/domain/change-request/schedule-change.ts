import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestScheduledSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { applicableFreezes, collisionsWith, toInterval } from "../calendar.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function scheduleChange(command: C.ScheduleChange, change: ChangeRequest): ChangeRequestEvent[] {
  // Rescheduling a scheduled change re-runs the freeze and collision checks on the new window.
  requireState(change, "schedule", [ChangeState.AUTHORIZED, ChangeState.SCHEDULED]);
  const window = toInterval(command.window);
  if (!window || window.end <= window.start) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.schedule.window_not_empty",
      "the window must end at least a millisecond after it starts (windows are counted in whole milliseconds)",
    );
  }
  const footprint = { ciIds: change.affectedCiIds, environments: change.environments };
  const freezes = applicableFreezes(command.freezes, footprint, window);
  const justification = command.freezeOverrideJustification.trim();
  if (freezes.length > 0) {
    const details = freezes.map((freeze) => ({
      rule: "change.schedule.freeze",
      subject: freeze.freezeWindowId,
      description: `freeze window "${freeze.name}" applies to this change`,
    }));
    if (change.type !== ChangeType.EMERGENCY) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "change.schedule.freeze",
        `change ${change.key} cannot be scheduled inside freeze window(s) ${freezes.map((f) => `"${f.name}"`).join(", ")}; only an EMERGENCY change may override a freeze`,
        details,
      );
    }
    if (!justification) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "change.schedule.freeze_override_justification",
        `emergency change ${change.key} falls inside freeze window(s) ${freezes.map((f) => `"${f.name}"`).join(", ")}; overriding needs freeze_override_justification`,
        details,
      );
    }
  }
  const collisions = collisionsWith(command.otherChanges, change, window);
  if (command.strict && collisions.length > 0) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.schedule.collision",
      `change ${change.key} collides with ${collisions.map((c) => c.key).join(", ")} (same CIs, overlapping windows)`,
      collisions.map((collision) => ({
        rule: "change.schedule.collision",
        subject: collision.changeRequestId,
        description: `${collision.key} touches ${collision.ciIds.join(", ")} in an overlapping window`,
      })),
    );
  }
  return [
    create(ChangeRequestScheduledSchema, {
      ...envelope(change, ChangeState.SCHEDULED),
      window: command.window,
      affectedCiIds: change.affectedCiIds,
      environments: change.environments,
      overriddenFreezeIds: freezes.map((freeze) => freeze.freezeWindowId),
      freezeOverrideJustification: freezes.length > 0 ? justification : "",
      collisions,
    }),
  ];
}
