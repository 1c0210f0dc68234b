import type { Logger } from "@rdm/observability";
import { testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import type { Consumer } from "kafkajs";
import { createKafka } from "../src/index.js";

interface Line {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps what it is given, as pino's child of itself. */
function recordingLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => lines.push({ level, msg, fields });
  const logger = { level: "info", info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") };
  return { logger: Object.assign(logger, { child: () => logger }) as unknown as Logger, lines };
}

const consumers: Consumer[] = [];
afterEach(async () => {
  for (const consumer of consumers.splice(0)) await consumer.disconnect();
});

test("a group rebalancing is a warning in our logs, not an error: kafkajs' caller rejoins", async () => {
  const { logger, lines } = recordingLogger();
  const kafka = createKafka({ brokers: await testKafkaBrokers(), clientId: uniqueId("log-test"), logger });
  const topic = uniqueId("test.log");
  const groupId = uniqueId("log-test-group");
  const join = async () => {
    const consumer = kafka.consumer({
      groupId,
      heartbeatInterval: 100,
      maxWaitTimeInMs: 100,
      sessionTimeout: 6000,
      rebalanceTimeout: 3000,
    });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachMessage: async () => {} });
  };
  const joins = () => lines.filter((l) => /consumer has joined the group/i.test(l.msg)).length;
  await join();
  await waitFor(() => joins() === 1, { timeoutMs: 30_000, description: "the first consumer in the group" });
  // A second member makes the group rebalance: the first one's next heartbeat is answered
  // "rebalancing", which kafkajs' connection logs as an error before its caller rejoins.
  const second = join();
  const rebalancing = (l: Line) => l.msg.startsWith("Response Heartbeat") && /rebalancing/.test(String(l.fields.error));
  await waitFor(() => lines.some(rebalancing), { timeoutMs: 30_000, description: "a heartbeat answered rebalancing" });
  await second;
  // Both members joined the rebalanced group (the first one rejoined).
  await waitFor(() => joins() >= 3, { timeoutMs: 30_000, description: "both consumers in the group" });
  expect(new Set(lines.filter(rebalancing).map((l) => l.level))).toEqual(new Set(["warn"]));
  const connectionErrors = lines.filter((l) => l.level === "error" && l.fields.kafkajs_namespace === "Connection");
  expect(connectionErrors).toEqual([]);
});
