export { releaseService, startReleaseService } from "./service.js";
