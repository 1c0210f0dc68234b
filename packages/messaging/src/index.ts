export * from "./cloudevents.js";
