export { RELEASE_LINK_EVENTS } from "./consumers/lifecycle-reactions.js";
export { changeConsumerEnv, changeServiceDefinition, startChangeService } from "./service.js";
export { changeQueryTables } from "./store/query-tables.js";
