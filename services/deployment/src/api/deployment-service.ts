import { create } from "@bufbuild/protobuf";
import { READER_ROLES } from "@rdm/auth";
import type { CommandHandler, DomainEvent } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import { InvalidArgument, type ServiceHandlers, type ServiceRegistration } from "@rdm/grpc";
import {
  DeploymentService,
  type EnvironmentDefinition,
  GetDeploymentResponseSchema,
  ListDeploymentsResponseSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { encodePageToken, isIsoTimestamp, isUuid, pageCursor, pageTokenScope } from "@rdm/runtime";
import type pg from "pg";
import { allTargets, type EnvironmentDefinition as DomainDefinition } from "../domain/index.js";
import { listDeployments, promotionChain, targetsElsewhere } from "../store/tables.js";
import { deployments } from "./aggregates.js";
import { deploymentCommandHandler, notFound, runEnvironmentCommand } from "./commands.js";
import { deploymentCommandHandlers, START_ROLES } from "./deployment-commands.js";
import { environmentsPage } from "./environment-pages.js";
import { executorHandlers } from "./executor-handlers.js";

export type Methods = (typeof DeploymentService)["method"];
export type Handlers = ServiceHandlers<Methods>;

export interface DeploymentApiDeps {
  store: EventStore;
  pool: pg.Pool;
  clock?: () => Date;
}

export interface ApiContext extends DeploymentApiDeps {
  handler: CommandHandler<DomainEvent>;
  clock: () => Date;
}

const PLANNERS = ["deployer", "release-manager"] as const;
const ENVIRONMENT_OWNERS = ["release-manager"] as const;
const DEFAULT_PAGE_SIZE = 50;
const definition = (request: EnvironmentDefinition | undefined): DomainDefinition => {
  if (!request) throw new InvalidArgument([{ field: "environment", description: "required" }]);
  return {
    name: request.name,
    promotionRank: request.promotionRank,
    promotesFrom: request.promotesFrom,
    targetGroups: request.targetGroups,
    protection: request.protection,
    executorLabels: request.executorLabels,
    production: request.production,
  };
};

function environmentAndQueryHandlers(api: ApiContext) {
  const M = DeploymentService.method;
  const { handler } = api;
  return {
    async registerEnvironment(request, ctx) {
      const def = definition(request.environment);
      return runEnvironmentCommand(handler, ctx, M.registerEnvironment, request, {
        output: M.registerEnvironment.output,
        name: def.name,
        command: async (tx) => ({
          kind: "registerEnvironment",
          definition: def,
          upstream: await promotionChain(tx, def.promotesFrom),
          elsewhere: await targetsElsewhere(tx, def.name, allTargets(def)),
        }),
      });
    },
    async changeEnvironment(request, ctx) {
      const def = definition(request.environment);
      return runEnvironmentCommand(handler, ctx, M.changeEnvironment, request, {
        output: M.changeEnvironment.output,
        name: def.name,
        command: async (tx) => ({
          kind: "changeEnvironment",
          definition: def,
          reason: request.reason,
          upstream: await promotionChain(tx, def.promotesFrom),
          elsewhere: await targetsElsewhere(tx, def.name, allTargets(def)),
        }),
      });
    },
    async setEnvironmentFreeze(request, ctx) {
      return runEnvironmentCommand(handler, ctx, M.setEnvironmentFreeze, request, {
        output: M.setEnvironmentFreeze.output,
        name: request.environment,
        command: { kind: "setFreeze", frozen: request.frozen, reason: request.reason },
      });
    },
    listEnvironments: (request) => environmentsPage(api.pool, request),
    async getDeployment(request) {
      const streamId = request.deploymentId;
      const { state } = await handler.load(api.pool, { aggregate: deployments, streamId });
      if (!state.deployment) throw notFound("deployment", request.deploymentId);
      return create(GetDeploymentResponseSchema, { deployment: state.deployment });
    },
    async listDeployments(request) {
      const scope = pageTokenScope("deployment.ListDeployments", request);
      const after = pageCursor(request.pageToken, scope, isIsoTimestamp, isUuid);
      const limit = request.pageSize || DEFAULT_PAGE_SIZE;
      const found = await listDeployments(
        api.pool,
        { releaseId: request.releaseId, environment: request.environment, states: request.states },
        { after, limit: limit + 1 },
      );
      const page = found.slice(0, limit);
      const last = page.at(-1);
      return create(ListDeploymentsResponseSchema, {
        deployments: page.map((row) => row.deployment),
        nextPageToken:
          found.length > limit && last
            ? encodePageToken(scope, last.createdAt.toISOString(), last.deployment.deploymentId)
            : "",
      });
    },
  } satisfies Partial<Handlers>;
}

/** DeploymentService: environments, deployments and the executor protocol. */
export function deploymentServiceHandlers(deps: DeploymentApiDeps): ServiceRegistration<Methods> {
  const clock = deps.clock ?? (() => new Date());
  const handler = deploymentCommandHandler(deps.store, clock);
  const api: ApiContext = { ...deps, handler, clock };
  return {
    service: DeploymentService,
    roles: {
      registerEnvironment: [...ENVIRONMENT_OWNERS],
      changeEnvironment: [...ENVIRONMENT_OWNERS],
      setEnvironmentFreeze: ["release-manager", "change-manager"],
      listEnvironments: [...READER_ROLES, "executor"],
      planDeployment: [...PLANNERS],
      // As for release and change approvals; membership of the environment's approval group is
      // checked by the decider.
      approveDeployment: ["approver"],
      startDeployment: [...START_ROLES],
      checkDeploymentGates: [...READER_ROLES],
      pauseDeployment: [...PLANNERS],
      resumeDeployment: [...PLANNERS],
      promoteDeployment: [...PLANNERS],
      cancelDeployment: [...PLANNERS],
      rollbackDeployment: ["deployer", "release-manager"],
      abandonRollback: ["deployer", "release-manager"],
      getDeployment: [...READER_ROLES, "executor"],
      listDeployments: [...READER_ROLES],
      claimStep: ["executor"],
      heartbeatStep: ["executor"],
      reportTargetProgress: ["executor"],
      completeStep: ["executor"],
      failStep: ["executor"],
      releaseStep: ["executor"],
    },
    handlers: {
      ...environmentAndQueryHandlers(api),
      ...deploymentCommandHandlers(api),
      ...executorHandlers(api),
    },
  };
}
