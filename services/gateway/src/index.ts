export { rebuildGateway } from "./rebuild-command.js";
export { gatewayEnv, type RunningGateway, startGateway } from "./service.js";
