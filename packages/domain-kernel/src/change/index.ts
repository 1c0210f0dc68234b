// The change rules that read sides share with the change service.
export { BOOKED_STATES, boardFor } from "./board.js";
