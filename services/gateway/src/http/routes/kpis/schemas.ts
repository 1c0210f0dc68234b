import { date, obj, str } from "../../schema-parts.js";
import { environmentName } from "../deployments/schemas.js";

const int = { type: "integer" } as const;
const num = { type: "number" } as const;
const nullableNum = { type: ["number", "null"] } as const;
const durations = (description: string) => ({
  ...obj({ count: int, totalSeconds: num, meanSeconds: nullableNum, medianSeconds: nullableNum }),
  description,
});

export const KPI_DEFINITIONS = `
All KPIs are computed from events: the deployment outcomes (DeploymentSucceeded, DeploymentFailed,
DeploymentRolledBack, first of each per deployment) and the releases' folded events. An instant is
in the period when from <= t < to. \`environment\` (default production) is where the DORA metrics
count deployments; \`service\` (a configuration item id, compared without case, as the deployment
gates compare targets) keeps the deployments whose artifacts target it or whose release package
maps an artifact to it, and the releases whose package does.
An environment neither defined nor deployed to, or a service neither in the CMDB nor targeted
nor packaged, is 404 (a typo is not an empty record).

- **deploymentFrequency**: deployments that succeeded in the environment in the period; perDay =
  deployments / days of the period.
- **leadTimeForChanges**: for each of those deployments, its success minus the earliest
  \`first_commit_time\` of the change requests linked to its release (RaiseChange/UpdateChange;
  cancelled changes aside), or, when none of them gave one, minus the release's registration.
- **changeFailureRate**: of the deployments whose outcome (failure, else success, else rollback)
  is in the period, those that failed, were rolled back, or, in a production environment,
  succeeded in a release whose post-implementation review was not SUCCESSFUL
  (PARTIALLY_SUCCESSFUL, FAILED, BACKED_OUT: it needed a fix; the review judges what production
  got). rate = failures / deployments (null with none).
- **timeToRestore**: for each deployment that failed in the period, from the failure to its
  rollback completing or the environment's next successful deployment, whichever is first;
  unrestored counts failures with neither yet.
- **onTimeReleaseRate**: releases whose first success in the environment is in the period; on time
  when that success is at or before the end of the release's planned window. rate = onTime /
  withPlannedWindow (releases without a planned window are counted, not rated).
- **approvalLeadTime**: release approvals decided (APPROVED or REJECTED) in the period: the
  deciding vote minus the request. Not per environment.
- **slaBreaches**: ReleaseDeadlineMissed whose due time is in the period (escalated: those
  escalated since). Not per environment.
`.trim();

export const kpiQuery = {
  type: "object",
  properties: {
    service: { type: "string", minLength: 1, maxLength: 200, description: "a configuration item id" },
    environment: {
      ...environmentName,
      description: "default production; one named that is neither defined nor deployed to is 404",
    },
    period: { type: "string", enum: ["day", "week", "month"], default: "week" },
    at: {
      type: "string",
      format: "date-time",
      description: "an instant in the period (default now): the UTC day, ISO week from Monday, or month",
    },
  },
  additionalProperties: false,
} as const;

export const kpiSchema = {
  ...obj({
    period: { type: "string", enum: ["day", "week", "month"] },
    from: date,
    to: {
      ...date,
      description: "the period's end, not in it; for a period ending in the year 10000, 9999's last millisecond",
    },
    environment: str,
    production: {
      type: "boolean",
      description: "whether the environment is production now (a release's review counts against its deployments only)",
    },
    service: { type: ["string", "null"] },
    deploymentFrequency: obj({ deployments: int, days: num, perDay: num }),
    leadTimeForChanges: durations(
      "first commit of the release's changes (else the release's registration) to success, per successful deployment",
    ),
    changeFailureRate: obj({
      deployments: int,
      failures: int,
      failed: int,
      rolledBack: int,
      neededFix: int,
      rate: nullableNum,
    }),
    timeToRestore: {
      ...obj({ count: int, totalSeconds: num, meanSeconds: nullableNum, medianSeconds: nullableNum, unrestored: int }),
    },
    onTimeReleaseRate: obj({ releases: int, withPlannedWindow: int, onTime: int, late: int, rate: nullableNum }),
    approvalLeadTime: durations("approval request to decision"),
    slaBreaches: obj({ breaches: int, escalated: int }),
  }),
  examples: [
    {
      period: "week",
      from: "2026-11-30T00:00:00.000Z",
      to: "2026-12-07T00:00:00.000Z",
      environment: "production",
      production: true,
      service: null,
      deploymentFrequency: { deployments: 3, days: 7, perDay: 0.42857142857142855 },
      leadTimeForChanges: { count: 3, totalSeconds: 799200, meanSeconds: 266400, medianSeconds: 259200 },
      changeFailureRate: { deployments: 5, failures: 3, failed: 2, rolledBack: 1, neededFix: 1, rate: 0.6 },
      timeToRestore: { count: 2, totalSeconds: 23400, meanSeconds: 11700, medianSeconds: 11700, unrestored: 0 },
      onTimeReleaseRate: { releases: 3, withPlannedWindow: 2, onTime: 1, late: 1, rate: 0.5 },
      approvalLeadTime: { count: 1, totalSeconds: 1800, meanSeconds: 1800, medianSeconds: 1800 },
      slaBreaches: { breaches: 1, escalated: 1 },
    },
  ],
} as const;
