import { runMain } from "@rdm/runtime/process";
import { startGateway } from "./service.js";

await runMain("gateway", () => startGateway(), { defaultMetricsPort: 9468 });
