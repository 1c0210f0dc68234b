export { changeConsumerEnv, changeService, changeServiceDefinition, startChangeService } from "./service.js";
export { rebuildQueryTables } from "./store/rebuild.js";
