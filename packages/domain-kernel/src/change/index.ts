// The change rules and event types that read sides share with the change service.
export { BOOKED_STATES, boardFor, implementedIn } from "./board.js";
export { ENVIRONMENT_NAMING_SCHEMAS, namesChangeEnvironments } from "./environments.js";
export type {
  ChangeRequestEvent,
  ChangeServiceEvent,
  FreezeWindowEvent,
  StandardChangeTemplateEvent,
} from "./events.js";
