export { webhookSignature } from "./jobs/webhook-delivery.js";
export { createReleaseService, type ReleaseServiceOptions, releaseEnv, startReleaseService } from "./service.js";
