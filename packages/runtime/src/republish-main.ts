// `pnpm --filter @rdm/runtime republish`, with a service's DATABASE_URL: its relay publishes every
// event of its store again, from the start (design §3, property 5: topics lost or emptied on the
// same Kafka cluster; on another cluster the relay does so by itself). Consumers de-duplicate by
// event id, so nothing is applied twice. The service may be running: its relay takes it up at once.
import { resetRelay } from "@rdm/relay";
import { runDatabaseCommand } from "./database-command.js";

await runDatabaseCommand("republish", async (pool) =>
  (await resetRelay(pool))
    ? "republish: the relay publishes every event again from the start"
    : "republish: no relay has published from this database yet; it will start from the start",
);
