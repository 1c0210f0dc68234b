export { type RelayCheckpoint, readRelayCheckpoint, relayMigrations, resetRelay } from "./checkpoint.js";
export { type Relay, type RelayOptions, startRelay, toCloudEvent } from "./relay.js";
