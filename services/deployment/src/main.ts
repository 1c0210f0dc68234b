import { runMain } from "@rdm/runtime";
import { startDeploymentService } from "./service.js";

await runMain("deployment", () => startDeploymentService(), { defaultMetricsPort: 9467 });
