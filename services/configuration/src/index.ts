export { configurationService, configurationServiceDefinition, startConfigurationService } from "./service.js";
