export { configurationServiceDefinition, startConfigurationService } from "./service.js";
