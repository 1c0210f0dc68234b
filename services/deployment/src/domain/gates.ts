import { implementedIn } from "@rdm/domain-kernel/change";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type { RuleDetail } from "./rule-violation.js";

/** What the service's read models know about a deployment's surroundings when it is started. */
export interface GateFacts {
  /** When the deployment begins: now, or its window's start when that is ahead. */
  now: Date;
  releaseId: string;
  /** Unknown to the read model: the release's events have not arrived (or it does not exist). */
  release?:
    | {
        phase: ReleasePhase;
        approved: boolean;
        abandoned: boolean;
        /** The artifact ids its package froze (undefined: frozen before the service kept it, or not yet). */
        package?: string[] | undefined;
      }
    | undefined;
  changes: {
    changeId: string;
    known: boolean;
    authorized: boolean;
    /** Withdrawn before its implementation: it can no longer cover a deployment. */
    cancelled?: boolean | undefined;
    /** FAILED or CLOSED: it covers no further deployment. */
    ended?: string | undefined;
    /** The plan names it (else it is linked to the release only). */
    planned?: boolean | undefined;
    /** The plan names it but the release does not list it (linked to another release, or to none). */
    outsideRelease?: boolean | undefined;
    window?: { start: Date; end: Date } | undefined;
    emergency: boolean;
    /** The environments it names (empty: production); unset when not heard of: it concerns every one. */
    environments?: string[] | undefined;
  }[];
  /** The environment, whether it is production, its freeze flag and the CIs the deployment targets there. */
  environment: {
    name: string;
    production?: boolean;
    frozen: boolean;
    freezeReason: string;
    targetCiIds: string[];
    /**
     * Targets the plan deploys to that are no longer where it deploys them: out of the environment
     * (taken out since the plan), or, blue-green, out of the colour's group.
     */
    takenOut?: string[] | undefined;
    /** Targets the plan deploys to that the CMDB lists as retired. */
    retired?: string[] | undefined;
    /**
     * The protection policy the environment has now, when it is not the one the plan was made
     * under (the approvals the deployment asks for are that one's).
     */
    protectionChanged?: { planned: Protection; now: Protection } | undefined;
  };
  /** The change calendar's freeze windows not lifted (from rdm.change.events.v1); those in force now apply. */
  freezeWindows: FreezeWindowFact[];
  /** The environment before this one in the promotion order, and whether the package succeeded there. */
  previousEnvironment?: { name: string; packageSucceeded: boolean } | undefined;
  artifacts: {
    artifactId: string;
    known: boolean;
    verified: boolean;
    quarantined: boolean;
    /** What the plan says it deploys, and what the DML registered under the id (unset: not heard). */
    planned: { name: string; version: string };
    registered?: { name: string; version: string } | undefined;
  }[];
  freezeOverride: { justification: string; byChangeManager: boolean };
  /** Another deployment already running in the environment. */
  runningDeploymentId?: string | undefined;
}

/** An approval group and how many of its members must approve (0: none). */
export interface Protection {
  approvalGroup: string;
  quorum: number;
}

/** A freeze (blackout) window of the change calendar, as the read model keeps it. */
export interface FreezeWindowFact {
  freezeWindowId: string;
  name: string;
  reason: string;
  start: Date;
  end: Date;
  scope: { all: boolean; ciIds: string[]; environments: string[] };
}

/**
 * The calendar's freeze windows that hold the deployment back now: the window contains now and
 * its scope is everything, the environment, or one of the CIs the deployment targets.
 */
export function freezeWindowsInForce(facts: GateFacts): FreezeWindowFact[] {
  // Targets compared without case, as the other gates compare them.
  const targets = new Set(facts.environment.targetCiIds.map((ci) => ci.toLowerCase()));
  return facts.freezeWindows.filter(
    ({ start, end, scope }) =>
      start <= facts.now &&
      facts.now < end &&
      (scope.all ||
        scope.environments.includes(facts.environment.name) ||
        scope.ciIds.some((ci) => targets.has(ci.toLowerCase()))),
  );
}

/** Whether any freeze (the environment's flag or a calendar window) holds the deployment back now. */
export const freezeInForce = (facts: GateFacts) => facts.environment.frozen || freezeWindowsInForce(facts).length > 0;

const detail = (rule: string, subject: string, description: string): RuleDetail => ({ rule, subject, description });

function releaseGate(facts: GateFacts): RuleDetail[] {
  const release = facts.release;
  if (!release)
    return [detail("gate.release_known", facts.releaseId, "the release is unknown to the deployment service")];
  return [
    ...(release.abandoned ? [detail("gate.release_abandoned", facts.releaseId, "the release was abandoned")] : []),
    ...(release.approved ? [] : [detail("gate.release_approved", facts.releaseId, "the release is not approved")]),
    ...(release.phase === ReleasePhase.DEPLOYMENT
      ? []
      : [detail("gate.release_phase", facts.releaseId, "the release is not in its deployment phase")]),
  ];
}

/**
 * A change that failed or was closed is left linked to its release (the release's review reads
 * it): it refuses the start when the plan names it, or when no other linked change is open to
 * cover the deployment; otherwise it is passed over.
 */
function endedChangeGate(facts: GateFacts, change: GateFacts["changes"][number]): RuleDetail[] {
  const open = facts.changes.some((c) => c.known && !c.cancelled && !c.ended);
  if (open && !change.planned) return [];
  const what = change.ended === "FAILED" ? "failed (its back-out is the plan)" : `is ${change.ended?.toLowerCase()}`;
  return [
    detail(
      "gate.change_over",
      change.changeId,
      `the change ${what}: it covers no further deployment; link another change to the release and plan without it`,
    ),
  ];
}

/** Whether a deployment to `environment` implements the change (one not heard of: every deployment). */
const concerns = (
  change: GateFacts["changes"][number],
  environment: Pick<GateFacts["environment"], "name" | "production">,
) =>
  change.environments === undefined ||
  implementedIn(change.environments, environment.name, environment.production ?? true);

/**
 * A production deployment goes out under a change (ITIL: no change to production without one):
 * a linked change that covers it (concerns production, neither cancelled, failed nor closed) must
 * exist; its authorization and window are the other change gates'. Without it a release whose
 * change was cancelled and unlinked after its approval, or whose model asks for none, would reach
 * production unrecorded.
 */
function changeRequiredGate(facts: GateFacts): RuleDetail[] {
  if (!(facts.environment.production ?? true)) return [];
  // One not heard of yet may cover it: gate.change_known refuses it on its own account.
  const covering = facts.changes.some(
    (change) => !change.known || (!change.cancelled && !change.ended && concerns(change, facts.environment)),
  );
  if (covering) return [];
  const name = facts.environment.name;
  return [
    detail(
      "gate.change_required",
      name,
      `${name} is production (its definition says so, or nothing promotes from it; a side environment ` +
        "says production: false): a deployment there needs a change request covering it; raise one, " +
        "link it to the release and have it authorized and scheduled",
    ),
  ];
}

function changeGates(facts: GateFacts): RuleDetail[] {
  return facts.changes.flatMap((change) => {
    if (!change.known) return [detail("gate.change_known", change.changeId, "the linked change is unknown")];
    if (change.cancelled)
      return [
        detail(
          "gate.change_cancelled",
          change.changeId,
          "the change was cancelled; unlink it from the release, and for production link another that covers it",
        ),
      ];
    if (change.ended) return endedChangeGate(facts, change);
    // A change for other environments leaves this deployment alone (a production change does not
    // hold the test deployments before it to its authorization and window).
    if (!concerns(change, facts.environment)) return [];
    const problems: RuleDetail[] = [];
    if (!change.authorized)
      problems.push(detail("gate.change_authorized", change.changeId, "the change is not authorized"));
    if (!change.window) {
      problems.push(detail("gate.change_scheduled", change.changeId, "the change is not scheduled"));
    } else if (facts.now < change.window.start || facts.now > change.window.end) {
      problems.push(
        detail(
          "gate.change_window",
          change.changeId,
          `the deployment begins at ${facts.now.toISOString()}, outside the change window ${change.window.start.toISOString()}..${change.window.end.toISOString()}`,
        ),
      );
    }
    return problems;
  });
}

/**
 * A freeze (the environment's flag or a calendar window in force) holds unless a change-manager
 * overrides it, with a justification, for an authorized emergency change; the override covers
 * every freeze in force, and each one it would have to cover is listed when it does not hold.
 */
function freezeGate(facts: GateFacts): RuleDetail[] {
  const windows = freezeWindowsInForce(facts);
  if (!facts.environment.frozen && windows.length === 0) return [];
  const override = facts.freezeOverride;
  // One that was cancelled, failed or closed covers nothing, an override neither.
  const emergency = facts.changes.some(
    (change) => change.emergency && change.authorized && !change.cancelled && !change.ended,
  );
  if (override.justification && override.byChangeManager && emergency) return [];
  const why = !override.justification
    ? ""
    : !override.byChangeManager
      ? " (an override needs the change-manager role)"
      : " (an override needs an authorized emergency change)";
  const { name, frozen, freezeReason } = facts.environment;
  return [
    ...(frozen
      ? [detail("gate.environment_frozen", name, `${name} is frozen: ${freezeReason || "no reason given"}${why}`)]
      : []),
    ...windows.map((window) =>
      detail(
        "gate.freeze_window",
        window.freezeWindowId,
        `freeze window "${window.name}" (${window.start.toISOString()}..${window.end.toISOString()}) applies to ` +
          `${name}: ${window.reason || "no reason given"}${why}`,
      ),
    ),
  ];
}

/**
 * A plan deploys to the targets the environment had when it was made: one taken out since (a host
 * retired or moved) is not the environment's to deploy to any more, nor is what runs there the
 * environment's to back out; a blue-green one moved into the live colour would get the new version
 * under traffic. The plan is made again on the targets there are now.
 */
function planTargetsGate(facts: GateFacts): RuleDetail[] {
  const { name, takenOut = [] } = facts.environment;
  if (!takenOut.length) return [];
  return [
    detail(
      "gate.plan_targets",
      name,
      `the plan deploys to ${takenOut.length === 1 ? "a target" : `${takenOut.length} targets`} no longer where it ` +
        `deploys them in ${name} (taken out, or moved to another colour: ${listed(takenOut)}): plan the deployment again`,
    ),
  ];
}

/**
 * A host the CMDB retired is decommissioned (retiring is final there): a deployment does not start
 * on it, nor begin, whatever the environment still lists. Its owners take it out of the
 * environment, and the plan is made again on the targets there are then. Checked at the start and
 * as it begins only: the later steps of a deployment under way (a promotion, the next batch) are
 * not checked again.
 */
function retiredTargetsGate(facts: GateFacts): RuleDetail[] {
  const { name, retired = [] } = facts.environment;
  if (!retired.length) return [];
  return [
    detail(
      "gate.target_retired",
      name,
      `the plan deploys to ${retired.length === 1 ? "a target" : `${retired.length} targets`} the CMDB lists as ` +
        `retired (${listed(retired)}): take ${retired.length === 1 ? "it" : "them"} out of ${name} and plan the ` +
        "deployment again",
    ),
  ];
}

/** The first five ids, then how many more: a refusal stays readable for a large fleet. */
const listed = (ids: string[]) => ids.slice(0, 5).join(", ") + (ids.length > 5 ? `, and ${ids.length - 5} more` : "");

function artifactGates(facts: GateFacts): RuleDetail[] {
  return facts.artifacts.flatMap((artifact) => {
    if (!artifact.known) return [detail("gate.artifact_known", artifact.artifactId, "the artifact is not in the DML")];
    const { planned, registered } = artifact;
    if (registered && (planned.name !== registered.name || planned.version !== registered.version)) {
      const says = `the plan names it ${planned.name}@${planned.version}`;
      const is = `the DML registered ${registered.name}@${registered.version}`;
      return [detail("gate.artifact_identity", artifact.artifactId, `${says}; ${is}`)];
    }
    if (artifact.quarantined)
      return [detail("gate.artifact_quarantined", artifact.artifactId, "the artifact is quarantined")];
    if (!artifact.verified)
      return [detail("gate.artifact_verified", artifact.artifactId, "the artifact is not verified")];
    return [];
  });
}

/**
 * Only what the release's frozen package holds goes out, when the service knows the package and
 * it holds any (an empty one is not compared, as the release service does not compare it either).
 */
function packageGate(facts: GateFacts): RuleDetail[] {
  const frozen = new Set(facts.release?.package?.map((id) => id.toLowerCase()));
  if (!frozen.size) return [];
  return facts.artifacts
    .filter((artifact) => !frozen.has(artifact.artifactId.toLowerCase()))
    .map((artifact) =>
      detail(
        "gate.release_package",
        artifact.artifactId,
        `${artifact.planned.name} ${artifact.planned.version} is not in the release's package`,
      ),
    );
}

/**
 * A deployment implements its release's changes: one the plan names that the release does not
 * list (as the release topic has told) is refused, and covers nothing, overrides no freeze. Not
 * told while the release is unknown (gate.release_known says so).
 */
const outsideRelease = (facts: GateFacts, change: GateFacts["changes"][number]) =>
  facts.release !== undefined && change.outsideRelease === true;

function outsideReleaseGate(facts: GateFacts): RuleDetail[] {
  return facts.changes
    .filter((change) => outsideRelease(facts, change))
    .map((change) =>
      detail(
        "gate.change_linked",
        change.changeId,
        `the plan names a change release ${facts.releaseId} does not list, as the release topic has told the ` +
          "deployment service (linked to another release or to none; or linked a moment ago and not heard of " +
          "yet: start again shortly): link it to the release, or plan without it",
      ),
    );
}

const policy = ({ approvalGroup, quorum }: Protection) =>
  quorum === 0 ? "no approval" : `${quorum} approval(s) from ${approvalGroup}`;

/**
 * The approvals a deployment collected are those of the protection it was planned under: one
 * changed since (added, tightened, moved to another group or lifted) asks for a new plan.
 */
function protectionGate(facts: GateFacts): RuleDetail[] {
  const changed = facts.environment.protectionChanged;
  if (!changed) return [];
  return [
    detail(
      "gate.protection_changed",
      facts.environment.name,
      `${facts.environment.name} requires ${policy(changed.now)} now, the plan ${policy(changed.planned)}: plan the deployment again`,
    ),
  ];
}

/** Every unmet condition before a deployment may start (the protection approval is the decider's). */
export function evaluateGates(facts: GateFacts): RuleDetail[] {
  const previous = facts.previousEnvironment;
  const own = { ...facts, changes: facts.changes.filter((change) => !outsideRelease(facts, change)) };
  return [
    ...releaseGate(facts),
    ...packageGate(facts),
    ...outsideReleaseGate(facts),
    ...changeRequiredGate(own),
    ...changeGates(own),
    ...freezeGate(own),
    ...(previous && !previous.packageSucceeded
      ? [
          detail(
            "gate.promotion_order",
            previous.name,
            `the package has not succeeded in ${previous.name}, the previous environment`,
          ),
        ]
      : []),
    ...artifactGates(facts),
    ...protectionGate(facts),
    ...planTargetsGate(facts),
    ...retiredTargetsGate(facts),
    ...(facts.runningDeploymentId
      ? [
          detail(
            "gate.environment_busy",
            facts.runningDeploymentId,
            `deployment ${facts.runningDeploymentId} holds ${facts.environment.name} (scheduled or under way): start when it has ended, or cancel it`,
          ),
        ]
      : []),
  ];
}
