export { deploymentService, startDeploymentService } from "./service.js";
