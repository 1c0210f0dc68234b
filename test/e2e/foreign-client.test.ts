// A client in another language, as the platform's users build one: Python stubs that plain protoc
// generates from proto/ as published (the sources, and proto/protovalidate.binpb for the
// buf/validate rules they import), Debian's grpcio for the calls and confluent-kafka (librdkafka)
// for the topic. It registers, retries and reads a configuration item, gets a refusal with its
// field violations and one without a token, and decodes the item's event by its ce_type header.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CONFIGURATION_EVENTS_TOPIC } from "@rdm/messaging";
import { testKafkaBrokers } from "@rdm/testkit";
import { e2eStack } from "./harness.js";

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// Debian's interpreter, whose packages python3-grpcio, python3-protobuf and
// python3-confluent-kafka `./rdm test` installs (another python3 on the PATH may lack them).
const PYTHON = "/usr/bin/python3";
const stack = e2eStack("e2e-foreign-client");
afterAll(() => stack.stop());

async function generatePythonStubs(): Promise<string> {
  const out = await mkdtemp(path.join(tmpdir(), "rdm-python-stubs-"));
  stack.onStop(() => rm(out, { recursive: true, force: true }));
  const files = (await readdir(path.join(root, "proto/rdm"), { recursive: true }))
    .filter((file) => file.endsWith(".proto"))
    .map((file) => `rdm/${file}`);
  await run("protoc", [
    `-I${path.join(root, "proto")}`,
    `--descriptor_set_in=${path.join(root, "proto/protovalidate.binpb")}`,
    `--python_out=${out}`,
    `--grpc_out=${out}`,
    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
    ...files,
    "buf/validate/validate.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
  ]);
  return out;
}

test("a Python client from the published descriptors calls the API and reads the events", async () => {
  const [service, stubs, brokers] = await Promise.all([
    stack.configuration(),
    generatePythonStubs(),
    testKafkaBrokers(),
  ]);
  const token = await stack.token("pat", ["config-manager"]);
  const topic = `${stack.topicPrefix}${CONFIGURATION_EVENTS_TOPIC}`;
  const { stdout } = await run(
    PYTHON,
    [path.join(root, "test/e2e/foreign-client/client.py"), stubs, service.address, token, brokers.join(","), topic],
    { timeout: 90_000 },
  );
  const answers = JSON.parse(stdout);
  expect(answers.ciId).toMatch(/^ci-[0-9a-f-]{36}$/);
  expect(answers).toEqual({
    ciId: answers.ciId,
    retriedCiId: answers.ciId,
    readBack: { name: "from-python", type: "CI_TYPE_SERVICE", owner: "outside" },
    invalid: { code: "INVALID_ARGUMENT", fields: ["name", "request_id"] },
    withoutToken: "UNAUTHENTICATED",
    event: { type: "rdm.configuration.v1.ConfigurationItemRegistered", key: answers.ciId, name: "from-python" },
  });
});
