export { createReleaseService, type ReleaseServiceOptions, releaseService, startReleaseService } from "./service.js";
