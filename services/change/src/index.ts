export { changeService, startChangeService } from "./service.js";
