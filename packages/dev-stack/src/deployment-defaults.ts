// What `./rdm up` sets up so a release can be deployed at once: the default promotion order, its
// targets as hosts in the CMDB, and the arguments of the reference executor it runs.
import path from "node:path";
import { createGrpcClient, errorDetails, GrpcStatus } from "@rdm/grpc";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";

/**
 * dev → test → staging → production, each promoting from the previous; production needs one
 * approval from the `cab` group. The targets are hosts registered in the CMDB under these names.
 * Each registration has a fixed request id: registering again after a restart returns the first
 * result, records nothing new.
 */
export const DEFAULT_ENVIRONMENTS = [
  { requestId: "00000000-0000-4000-8000-00000000e101", name: "dev", groups: { rest: ["dev-app-1"] } },
  { requestId: "00000000-0000-4000-8000-00000000e102", name: "test", groups: { rest: ["test-app-1"] } },
  {
    requestId: "00000000-0000-4000-8000-00000000e103",
    name: "staging",
    groups: { rest: ["staging-app-1", "staging-app-2"] },
  },
  {
    requestId: "00000000-0000-4000-8000-00000000e104",
    name: "production",
    groups: { pilot: ["prod-app-1"], rest: ["prod-app-2", "prod-app-3"] },
    protection: { approvalGroup: "cab", quorum: 1 },
  },
] as const;

/** Each default target registered as a host of the CMDB: its CI id by name. */
async function registerTargets(address: string, token: string): Promise<Map<string, string>> {
  const client = createGrpcClient(ConfigurationService, address, { token });
  const names = DEFAULT_ENVIRONMENTS.flatMap(({ groups }) => Object.values(groups).flat());
  const ids = new Map<string, string>();
  try {
    for (const [i, name] of names.entries()) {
      const { item } = await client.registerConfigurationItem({
        requestId: `00000000-0000-4000-8000-0000000c${String(i + 1).padStart(4, "0")}`,
        name,
        type: CiType.HOST,
        owner: "platform",
      });
      ids.set(name, item?.ciId ?? name);
    }
  } finally {
    client.close();
  }
  return ids;
}

/**
 * Registers the default environments on their CMDB hosts. An environment registered by an
 * earlier version of the stack (its targets the bare names) stays as it is.
 */
export async function registerDefaultEnvironments(
  addresses: { deployment: string; configuration: string },
  token: string,
): Promise<void> {
  const ciIds = await registerTargets(addresses.configuration, token);
  const client = createGrpcClient(DeploymentService, addresses.deployment, { token });
  try {
    for (const [i, { requestId, name, groups, ...rest }] of DEFAULT_ENVIRONMENTS.entries()) {
      const targetGroups = Object.entries(groups).map(([group, hosts]) => ({
        name: group,
        ciIds: (hosts as readonly string[]).map((host) => ciIds.get(host) ?? host),
      }));
      await client
        .registerEnvironment({
          requestId,
          environment: {
            name,
            promotionRank: i + 1,
            promotesFrom: DEFAULT_ENVIRONMENTS[i - 1]?.name ?? "",
            targetGroups,
            protection: "protection" in rest ? rest.protection : undefined,
          },
        })
        .catch((error: unknown) => {
          if (errorDetails(error).code !== GrpcStatus.ALREADY_EXISTS) throw error;
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
