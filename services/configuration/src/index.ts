export { configurationService, startConfigurationService } from "./service.js";
