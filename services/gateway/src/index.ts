export { gatewayEnv, type RunningGateway, startGateway } from "./service.js";
