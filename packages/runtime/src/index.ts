export { openDatabase } from "./database.js";
export { type DatabaseWatch, type DatabaseWatchOptions, watchDatabase } from "./database-health.js";
export {
  type GrpcServiceDefinition,
  type MainOptions,
  type RunningService,
  runMain,
  type ServiceContext,
  startGrpcService,
  verifierFromConfig,
  type Worker,
} from "./grpc-service.js";
export { decodePageToken, encodePageToken, isIsoTimestamp, isUuid, UUID_PATTERN } from "./page-token.js";
export { type Poller, startPoller } from "./poller.js";
export { observePoolUse } from "./pool-metrics.js";
