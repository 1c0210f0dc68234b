import { READER_ROLES, type Role } from "@rdm/auth";
import type { ServiceRegistration } from "@rdm/grpc";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { artifactVerificationHandlers } from "./artifact-verification.js";
import { artifactHandlers } from "./artifacts.js";
import { baselineHandlers } from "./baselines.js";
import type { ConfigurationApiDeps } from "./configuration-rpc.js";
import { importHandlers } from "./import.js";
import { itemCommandHandlers } from "./item-commands.js";
import { itemQueryHandlers } from "./item-queries.js";
import { relationshipHandlers } from "./relationships.js";

const CONFIG_MANAGERS: Role[] = ["config-manager"];

/** The configuration service: its RPCs, composed from one module per group of RPCs. */
export function configurationServiceHandlers(
  deps: ConfigurationApiDeps,
): ServiceRegistration<(typeof ConfigurationService)["method"]> {
  return {
    service: ConfigurationService,
    roles: {
      registerConfigurationItem: CONFIG_MANAGERS,
      updateConfigurationItem: CONFIG_MANAGERS,
      changeConfigurationItemStatus: CONFIG_MANAGERS,
      // An executor reads what its step names: the target CIs and the artifacts' media and checksums.
      getConfigurationItem: [...READER_ROLES, "executor"],
      listConfigurationItems: READER_ROLES,
      getConfigurationItemHistory: READER_ROLES,
      addRelationship: CONFIG_MANAGERS,
      removeRelationship: CONFIG_MANAGERS,
      listRelationships: READER_ROLES,
      analyzeImpact: READER_ROLES,
      importConfiguration: CONFIG_MANAGERS,
      registerArtifact: ["config-manager", "release-manager", "deployer"],
      getArtifact: [...READER_ROLES, "executor"],
      listArtifacts: READER_ROLES,
      verifyArtifact: ["config-manager", "deployer"],
      verifyArtifactContent: ["config-manager", "deployer"],
      quarantineArtifact: CONFIG_MANAGERS,
      retireArtifact: CONFIG_MANAGERS,
      checkPackageConsistency: READER_ROLES,
      getBaseline: READER_ROLES,
    },
    handlers: {
      ...itemCommandHandlers(deps),
      ...itemQueryHandlers(deps),
      ...relationshipHandlers(deps),
      ...importHandlers(deps),
      ...artifactHandlers(deps),
      ...artifactVerificationHandlers(deps),
      ...baselineHandlers(deps),
    },
  };
}
