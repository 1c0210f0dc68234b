/**
 * Conflicts on the calendar, as a pure function of what it shows: booked changes sharing CIs,
 * changes and deployments inside a freeze that covers them, deployments to one environment at
 * once, and a deployment touching a change's CIs that neither it nor its release is linked to.
 * Windows are half-open.
 */

export interface Window {
  start: Date;
  end: Date;
}
export interface CalendarChange {
  id: string;
  key: string;
  booked: boolean;
  window: Window;
  ciIds: string[];
  environments: string[];
  overriddenFreezeIds: string[];
  /** The release it is linked to (empty: none): that release's deployments implement it. */
  linkedReleaseId: string;
}
export interface CalendarDeployment {
  id: string;
  releaseId: string;
  environment: string;
  window: Window;
  ciIds: string[];
  /** The changes it implements (its plan's and those its start checked, as it began): no conflict with them. */
  implementedChangeIds: string[];
  /** The freeze windows its start overrode (an emergency change's justification): no conflict with them. */
  overriddenFreezeIds: string[];
}
export interface CalendarFreeze {
  id: string;
  name: string;
  window: Window;
  all: boolean;
  ciIds: string[];
  environments: string[];
}

/** Whether the deployment implements the change: its plan or start names it, or it is its release's. */
const implementedBy = (c: CalendarChange, d: CalendarDeployment) =>
  d.implementedChangeIds.some((id) => sameId(id, c.id)) ||
  (c.linkedReleaseId !== "" && sameId(c.linkedReleaseId, d.releaseId));
/** Ids compared without case: UUIDs (a plan from before inputs were lowercased keeps its case) and CI ids. */
const sameId = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export type ConflictKind =
  | "CHANGE_CHANGE"
  | "CHANGE_FREEZE"
  | "DEPLOYMENT_FREEZE"
  | "DEPLOYMENT_DEPLOYMENT"
  | "CHANGE_DEPLOYMENT";
type Item = { type: "change" | "deployment" | "freeze"; id: string; label: string; window: Window };
export type Conflict = { kind: ConflictKind; items: [Item, Item]; ciIds: string[]; environment: string | null };

const overlaps = (a: Window, b: Window) => a.start < b.end && b.start < a.end;
/** The CI ids of `a` that `b` names too, without case (as the deployment gates compare targets), as `a` spells them. */
const shared = (a: string[], b: string[]) => [...new Set(a.filter((x) => b.some((y) => sameId(x, y))))].sort();
const changeItem = (c: CalendarChange): Item => ({ type: "change", id: c.id, label: c.key, window: c.window });
const deploymentItem = (d: CalendarDeployment): Item => ({
  type: "deployment",
  id: d.id,
  label: d.environment,
  window: d.window,
});
const freezeItem = (f: CalendarFreeze): Item => ({ type: "freeze", id: f.id, label: f.name, window: f.window });

/**
 * A freeze covers environments and CIs when its scope is everything, names one of the
 * environments, or shares a CI. No environment is any (a change naming none may be deployed
 * anywhere), as the change service applies freezes: every environment scope covers it, named by
 * the calendar's environment when the freeze names it (`asked`), else by the freeze's first.
 */
function covers(f: CalendarFreeze, environments: string[], ciIds: string[], asked: string | undefined) {
  if (f.all) return { ciIds: [], environment: null };
  const candidates = environments.length ? environments : [...(asked ? [asked] : []), ...f.environments];
  const environment = candidates.find((e) => f.environments.includes(e));
  const cis = shared(f.ciIds, ciIds);
  return environment || cis.length ? { ciIds: cis, environment: environment ?? null } : undefined;
}

function pairs<T>(items: T[], each: (a: T, b: T) => void) {
  for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) each(items[i] as T, items[j] as T);
}

export function calendarConflicts(
  changes: CalendarChange[],
  deployments: CalendarDeployment[],
  freezes: CalendarFreeze[],
  environment?: string,
): Conflict[] {
  const conflicts: Conflict[] = [];
  // Pairs of changes in (key, id) order, as the change calendar always listed them.
  const booked = changes
    .filter((c) => c.booked)
    .sort((a, b) => a.key.localeCompare(b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  pairs(booked, (a, b) => {
    const ciIds = shared(a.ciIds, b.ciIds);
    if (ciIds.length && overlaps(a.window, b.window))
      conflicts.push({ kind: "CHANGE_CHANGE", items: [changeItem(a), changeItem(b)], ciIds, environment: null });
  });
  for (const f of freezes) {
    for (const c of booked) {
      const covered = covers(f, c.environments, c.ciIds, environment);
      if (covered && overlaps(c.window, f.window) && !c.overriddenFreezeIds.includes(f.id))
        conflicts.push({ kind: "CHANGE_FREEZE", items: [changeItem(c), freezeItem(f)], ...covered });
    }
    for (const d of deployments) {
      const covered = covers(f, [d.environment], d.ciIds, environment);
      if (covered && overlaps(d.window, f.window) && !d.overriddenFreezeIds.includes(f.id))
        conflicts.push({ kind: "DEPLOYMENT_FREEZE", items: [deploymentItem(d), freezeItem(f)], ...covered });
    }
  }
  pairs(deployments, (a, b) => {
    if (a.environment === b.environment && overlaps(a.window, b.window))
      conflicts.push({
        kind: "DEPLOYMENT_DEPLOYMENT",
        items: [deploymentItem(a), deploymentItem(b)],
        ciIds: shared(a.ciIds, b.ciIds),
        environment: a.environment,
      });
  });
  for (const c of booked) {
    for (const d of deployments) {
      const ciIds = shared(c.ciIds, d.ciIds);
      if (ciIds.length && overlaps(c.window, d.window) && !implementedBy(c, d))
        conflicts.push({
          kind: "CHANGE_DEPLOYMENT",
          items: [changeItem(c), deploymentItem(d)],
          ciIds,
          environment: d.environment,
        });
    }
  }
  return conflicts;
}
