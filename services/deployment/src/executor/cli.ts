#!/usr/bin/env node
import { parseArgs } from "node:util";
import { type ExecutorLog, ReferenceExecutor } from "./reference-executor.js";

const usage = `rdm-executor: claims deployment steps and performs each target.

  --address host:port     the deployment service (default 127.0.0.1:50054, or RDM_DEPLOYMENT_ADDRESS)
  --token JWT             a token with the executor role (or RDM_EXECUTOR_TOKEN)
  --id NAME               this executor's id (default executor-<pid>)
  --environment NAME      serve this environment (repeatable; default: any)
  --label LABEL           a label this executor carries (repeatable)
  --command CMD           run per target with /bin/sh -c (RDM_TARGET, RDM_STEP_KIND, RDM_ARTIFACTS, ...)
  --http-url URL          or POST the step and target as JSON per target (2xx: success)
  --lease-seconds N       lease per claim (default 30)
  --poll-ms N             first pause when no step waits (default 1000); doubled per idle poll
  --max-poll-ms N         up to this (default 10000); work resets it
  --once                  perform at most one step, then exit

Claims and outcomes are logged at info; LOG_LEVEL=debug logs every idle poll too.`;

const { values } = parseArgs({
  options: {
    address: { type: "string", default: process.env.RDM_DEPLOYMENT_ADDRESS ?? "127.0.0.1:50054" },
    token: { type: "string", default: process.env.RDM_EXECUTOR_TOKEN ?? "" },
    id: { type: "string", default: `executor-${process.pid}` },
    environment: { type: "string", multiple: true, default: [] },
    label: { type: "string", multiple: true, default: [] },
    command: { type: "string" },
    "http-url": { type: "string" },
    "lease-seconds": { type: "string", default: "30" },
    "poll-ms": { type: "string", default: "1000" },
    "max-poll-ms": { type: "string", default: "10000" },
    once: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

const fail = (message: string): never => {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
};

if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const leaseSeconds = Number.parseInt(values["lease-seconds"], 10);
const pollMs = Number.parseInt(values["poll-ms"], 10);
const maxPollMs = Number.parseInt(values["max-poll-ms"], 10);
if (!values.token) fail("a token is required (--token or RDM_EXECUTOR_TOKEN)");
if (!(leaseSeconds >= 1 && pollMs >= 10 && maxPollMs >= pollMs)) {
  fail("--lease-seconds must be >= 1, --poll-ms >= 10 and --max-poll-ms >= --poll-ms");
}
const action = values.command
  ? { command: values.command }
  : values["http-url"]
    ? { httpUrl: values["http-url"] }
    : fail("one of --command or --http-url is required");

/** One JSON line per entry on stdout (what `./rdm up` shows); idle polls only with LOG_LEVEL=debug. */
function jsonLines(executor: string, debug: boolean): ExecutorLog {
  const write = (level: string) => (fields: object, msg?: string) => {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, executor, ...fields, msg })}\n`);
  };
  return { debug: debug ? write("debug") : () => undefined, info: write("info"), warn: write("warn") } as ExecutorLog;
}

const executor = new ReferenceExecutor({
  address: values.address,
  token: values.token,
  executorId: values.id,
  environments: values.environment,
  labels: values.label,
  leaseSeconds,
  action,
  logger: jsonLines(values.id, process.env.LOG_LEVEL === "debug"),
});

for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => executor.stop());
// Started by a supervisor with an IPC channel (`./rdm up`; process.send exists only then): the
// channel closes when the supervisor dies, however it dies; the executor stops after its current
// target and does not outlive it by more than 10 s (a call still open to a service that ended
// with the supervisor). A supervisor killed while the executor was starting closed the channel
// before this line: "disconnect" was already emitted, so it is checked here too.
if (typeof process.send === "function") {
  const end = () => {
    executor.stop();
    setTimeout(() => process.exit(1), 10_000).unref();
  };
  if (!process.connected) end();
  else {
    process.once("disconnect", end);
    process.channel?.unref();
  }
}
await executor.run({ pollMs, maxPollMs, once: values.once });
executor.close();
