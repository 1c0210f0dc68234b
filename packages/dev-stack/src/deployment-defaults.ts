// What `./rdm up` sets up in the deployment service so a release can be deployed at once: the
// default promotion order and the arguments of the reference executor it runs.
import path from "node:path";
import { createGrpcClient } from "@rdm/grpc";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";

/**
 * dev → test → staging → production, each promoting from the previous; production needs one
 * approval from the `cab` group. Target ids are placeholders for CMDB configuration items. Each
 * has a fixed request id: registering again after a restart returns the first result, records
 * nothing new.
 */
export const DEFAULT_ENVIRONMENTS = [
  { requestId: "00000000-0000-4000-8000-00000000e001", name: "dev", groups: { rest: ["dev-app-1"] } },
  { requestId: "00000000-0000-4000-8000-00000000e002", name: "test", groups: { rest: ["test-app-1"] } },
  {
    requestId: "00000000-0000-4000-8000-00000000e003",
    name: "staging",
    groups: { rest: ["staging-app-1", "staging-app-2"] },
  },
  {
    requestId: "00000000-0000-4000-8000-00000000e004",
    name: "production",
    groups: { pilot: ["prod-app-1"], rest: ["prod-app-2", "prod-app-3"] },
    protection: { approvalGroup: "cab", quorum: 1 },
  },
] as const;

export async function registerDefaultEnvironments(address: string, token: string): Promise<void> {
  const client = createGrpcClient(DeploymentService, address, { token });
  try {
    for (const [i, { requestId, name, groups, ...rest }] of DEFAULT_ENVIRONMENTS.entries()) {
      await client.registerEnvironment({
        requestId,
        environment: {
          name,
          promotionRank: i + 1,
          promotesFrom: DEFAULT_ENVIRONMENTS[i - 1]?.name ?? "",
          targetGroups: Object.entries(groups).map(([group, ciIds]) => ({ name: group, ciIds: [...ciIds] })),
          protection: "protection" in rest ? rest.protection : undefined,
        },
      });
    }
  } finally {
    client.close();
  }
}

/**
 * What the executor runs per target. Harmless on a laptop: it says what it would do; exit 0 is
 * success (and a passed verification). One switch, to try a failed verification and its automatic
 * rollback: a VERIFY step fails when an artifact's version ends in `-fails-verification`.
 */
export const EXECUTOR_COMMAND = `case "$RDM_STEP_KIND $RDM_ARTIFACTS" in
  VERIFY*'-fails-verification"'*) echo "verification failed on $RDM_TARGET: error rate above threshold"; exit 1;;
esac
echo "$RDM_STEP_KIND $RDM_ARTIFACTS to $RDM_TARGET in $RDM_ENVIRONMENT"`;

/** The reference executor (bin `rdm-executor` of @rdm/deployment) serving every environment. */
export function executorArguments(root: string, address: string, id = "dev-executor"): string[] {
  return [
    path.join(root, "services/deployment/dist/executor/cli.js"),
    "--address",
    address,
    "--id",
    id,
    // Idle it backs off from 1 s to 2 s only, so a deployment on a laptop starts within seconds.
    "--max-poll-ms",
    "2000",
    "--command",
    EXECUTOR_COMMAND,
  ];
}
