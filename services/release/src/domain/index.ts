// The release aggregate's pure domain, for read sides that fold release events (the gateway's
// release overview evaluates gates exactly as the service does).
export { AUTHORIZED_CHANGE_STATES, DEFAULT_MODELS, EMERGENCY_MODEL, STANDARD_MODEL } from "./models.js";
export { NOTIFICATION_POLICY } from "./notifications.js";
export {
  evolve,
  fold,
  gateConditions,
  initialState,
  type LinkedChangeState,
  nextPhase,
  type ReleaseEvent,
  type ReleaseState,
} from "./release.js";
