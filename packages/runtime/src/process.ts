// What every process of the system uses, without the gRPC service and so without gRPC:
// `@rdm/runtime/process`, for a process that serves no gRPC (the gateway), whose start would
// otherwise load @grpc/grpc-js, server reflection and protobuf.js for nothing.
export { openDatabase } from "./database.js";
export { type DatabaseWatch, type DatabaseWatchOptions, watchDatabase } from "./database-health.js";
export { type MainOptions, runMain } from "./main.js";
export {
  decodePageToken,
  encodePageToken,
  isIsoTimestamp,
  isUuid,
  type PageTokenFault,
  pageTokenScope,
  rowsFitting,
  UUID_PATTERN,
} from "./page-token.js";
export { type Poller, startPoller } from "./poller.js";
export { observePoolUse } from "./pool-metrics.js";
export { verifierFromConfig } from "./verifier.js";
