// The change rules that read sides share with the change service.
export { boardFor } from "./board.js";
