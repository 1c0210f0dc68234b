export { openDatabase } from "./database.js";
export {
  type GrpcServiceDefinition,
  type RunningService,
  runMain,
  type ServiceContext,
  startGrpcService,
  verifierFromConfig,
  type Worker,
} from "./grpc-service.js";
