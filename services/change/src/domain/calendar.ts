import { create } from "@bufbuild/protobuf";
import { BOOKED_STATES } from "@rdm/domain-kernel/change";
import { instantOf } from "@rdm/proto";
import {
  type ChangeCollision,
  ChangeCollisionSchema,
  type ChangeRequest,
  type FreezeWindow,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";

/** A closed-open time interval in epoch milliseconds. */
export interface Interval {
  start: number;
  end: number;
}

export function toInterval(window: TimeWindow | undefined): Interval | undefined {
  if (!window?.start || !window.end) return undefined;
  return { start: instantOf(window.start).getTime(), end: instantOf(window.end).getTime() };
}

/** [a.start, a.end) and [b.start, b.end) share an instant (touching ends do not overlap). */
export const overlaps = (a: Interval, b: Interval) => a.start < b.end && b.start < a.end;

export const intersect = (a: readonly string[], b: readonly string[]) => {
  const set = new Set(b);
  return a.filter((item) => set.has(item));
};

/** What a change touches, for matching against freeze scopes. */
export interface ChangeFootprint {
  ciIds: readonly string[];
  environments: readonly string[];
}

/**
 * Freeze windows that apply to a change in `window`: not lifted, overlapping, and scoped to
 * everything, to one of the change's CIs, or to one of its environments. A change that names
 * no environment may reach any (deployments anywhere move it), so every environment scope
 * applies to it.
 */
export function applicableFreezes(
  freezes: readonly FreezeWindow[],
  footprint: ChangeFootprint,
  window: Interval,
): FreezeWindow[] {
  return freezes.filter((freeze) => {
    const interval = toInterval(freeze.window);
    if (freeze.lifted || !interval || !overlaps(interval, window)) return false;
    const scope = freeze.scope;
    if (!scope) return false;
    return (
      scope.all ||
      intersect(footprint.ciIds, scope.ciIds).length > 0 ||
      (scope.environments.length > 0 && footprint.environments.length === 0) ||
      intersect(footprint.environments, scope.environments).length > 0
    );
  });
}

// Which states book the calendar is a kernel rule: the gateway's calendar view shows the same.
export { BOOKED_STATES };

/**
 * Other changes booked in a window overlapping `window` that touch some of the same CIs.
 * `others` may hold any changes; the ones that do not collide are ignored.
 */
export function collisionsWith(
  others: readonly ChangeRequest[],
  self: { changeRequestId: string; affectedCiIds: readonly string[] },
  window: Interval,
): ChangeCollision[] {
  const collisions: ChangeCollision[] = [];
  for (const other of others) {
    if (other.changeRequestId === self.changeRequestId || !BOOKED_STATES.includes(other.state)) continue;
    const otherInterval = toInterval(other.plannedWindow);
    if (!otherInterval || !overlaps(otherInterval, window)) continue;
    const shared = intersect(self.affectedCiIds, other.affectedCiIds);
    if (shared.length === 0) continue;
    collisions.push(
      create(ChangeCollisionSchema, {
        changeRequestId: other.changeRequestId,
        key: other.key,
        state: other.state,
        ...(other.plannedWindow ? { window: other.plannedWindow } : {}),
        ciIds: shared,
      }),
    );
  }
  return collisions.sort((a, b) => a.key.localeCompare(b.key));
}
