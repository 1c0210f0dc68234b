import { rebuildGateway } from "./rebuild-command.js";

// `pnpm --filter @rdm/gateway rebuild-views`, with the gateway's environment and the gateway stopped.
await rebuildGateway().catch((error: Error) => {
  console.error(`gateway rebuild failed: ${error.message}`);
  process.exitCode = 1;
});
