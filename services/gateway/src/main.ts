import { runMain } from "@rdm/runtime";
import { startGateway } from "./service.js";

await runMain("gateway", () => startGateway(), { defaultMetricsPort: 9468 });
