export { changeConsumerEnv, changeService, changeServiceDefinition, startChangeService } from "./service.js";
