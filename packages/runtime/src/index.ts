export {
  type GrpcServiceDefinition,
  type RunningService,
  type ServiceContext,
  startGrpcService,
  type Worker,
} from "./grpc-service.js";
export { pageCursor, pageTokenRefused } from "./page-cursor.js";
export * from "./process.js";
export { rebuildTablesMain } from "./rebuild-tables.js";
