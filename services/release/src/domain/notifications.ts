import { create } from "@bufbuild/protobuf";
import { ReleaseNotificationRequestedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { type Release, ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type { DecisionContext, ReleaseEvent, ReleaseState } from "./release.js";

/** Who is told, by role in the release; resolved to addresses against the release. */
export type Audience =
  | "owner"
  | "coordinator"
  | "stakeholders"
  | "approvers"
  | "requester"
  | "release-managers"
  | "assignee";

/**
 * The notification policy: which events are key points, and who hears of them. Recipients are
 * user subjects (owner, coordinator, stakeholders) or addresses of groups ("group:cab") and
 * roles ("role:release-manager") that the delivery channel expands.
 */
export const NOTIFICATION_POLICY: Partial<Record<ReleaseEvent["$typeName"], readonly Audience[]>> = {
  "rdm.release.v1.ReleaseRegistered": ["owner", "coordinator", "stakeholders"],
  "rdm.release.v1.ReleaseApprovalRequested": ["approvers"],
  "rdm.release.v1.ReleaseApprovalRejected": ["owner", "coordinator", "requester"],
  "rdm.release.v1.ReleasePhaseAdvanced": ["owner", "coordinator", "stakeholders"],
  "rdm.release.v1.ReleasePhaseReworked": ["owner", "coordinator", "stakeholders"],
  "rdm.release.v1.ReleaseDeadlineMissed": ["owner", "coordinator"],
  "rdm.release.v1.ReleaseDeadlineEscalated": ["owner", "coordinator", "release-managers"],
  "rdm.release.v1.ReleaseAbandoned": ["owner", "coordinator", "stakeholders"],
  "rdm.release.v1.ReleaseClosed": ["owner", "coordinator", "stakeholders"],
  "rdm.release.v1.ReleaseTaskOverdue": ["assignee", "coordinator"],
  // A deployment that failed or was rolled back (design §4: "rolled back" is a key point).
  "rdm.release.v1.ReleaseDeviationRecorded": ["owner", "coordinator"],
};

function audienceOf(event: ReleaseEvent): readonly Audience[] | undefined {
  // An approval is a key point when it completes the quorum, not at every vote.
  if (event.$typeName === "rdm.release.v1.ReleaseApprovalGranted")
    return event.quorumReached ? ["owner", "coordinator", "requester"] : undefined;
  // "Deployed" is a key point when the release reaches production, not at every environment.
  if (event.$typeName === "rdm.release.v1.ReleaseDeploymentRecorded")
    return event.deployment?.production ? ["owner", "coordinator", "stakeholders"] : undefined;
  return NOTIFICATION_POLICY[event.$typeName];
}

function resolve(audience: readonly Audience[], event: ReleaseEvent, release: Release): string[] {
  const approvalId = "approvalId" in event ? event.approvalId : "";
  const approval = release.approvals.find((a) => a.approvalId === approvalId);
  const recipients = audience.flatMap((who): string[] => {
    switch (who) {
      case "owner":
        return [release.owner];
      case "coordinator":
        return [release.coordinator];
      case "stakeholders":
        return release.stakeholders;
      case "approvers":
        return approval ? [`group:${approval.approverGroup}`] : [];
      case "requester":
        return approval ? [approval.requestedBy] : [];
      case "release-managers":
        return ["role:release-manager"];
      case "assignee":
        return event.$typeName === "rdm.release.v1.ReleaseTaskOverdue" ? [event.assignee] : [];
      default:
        return [];
    }
  });
  return [...new Set(recipients.filter(Boolean))];
}

const subjectOf = (event: ReleaseEvent, release: Release): string => {
  const what = event.$typeName.replace("rdm.release.v1.Release", "");
  return `${release.key} ${release.title}: ${what} (${ReleasePhase[release.phase]})`;
};

/**
 * The NotificationRequested events the policy asks for after `events`, given the state before
 * and after them. Pure: the caller appends them with the events that triggered them.
 */
export function notificationsFor(
  events: ReleaseEvent[],
  evolveAll: (events: ReleaseEvent[]) => ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const notifications: ReleaseEvent[] = [];
  events.forEach((event, index) => {
    const audience = audienceOf(event);
    if (!audience) return;
    const release = evolveAll(events.slice(0, index + 1)).release;
    if (!release) return;
    const recipients = resolve(audience, event, release);
    if (!recipients.length) return;
    notifications.push(
      create(ReleaseNotificationRequestedSchema, {
        releaseId: release.releaseId,
        notificationId: ctx.newId(),
        trigger: event.$typeName,
        recipients,
        subject: subjectOf(event, release),
        phase: release.phase,
      }),
    );
  });
  return notifications;
}
