// A small gRPC client for trying the local stack without grpcurl: the request is proto3 JSON,
// the answer is printed as proto3 JSON. A request without `requestId` gets a fresh one.
//   RDM_TOKEN=$(./rdm token olivia release-manager) \
//     node packages/dev-stack/dist/call.js release RegisterRelease '{"title":"Payments 4.2",...}'
// `call.js health` prints each service's grpc.health.v1 status (no token needed).
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { type DescMessage, type DescService, fromJson, type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import { checkHealth, createGrpcClient, errorDetails } from "@rdm/grpc";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { NotificationService } from "@rdm/proto/gen/rdm/notification/v1/notification_service_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { answerField } from "./answer-field.js";

const SERVICES: Record<string, { service: DescService; port: number; portVariable?: string }> = {
  release: { service: ReleaseService, port: 50051 },
  change: { service: ChangeService, port: 50052 },
  configuration: { service: ConfigurationService, port: 50053 },
  deployment: { service: DeploymentService, port: 50054 },
  // Served by the release process (its notifier).
  notification: { service: NotificationService, port: 50051, portVariable: "RELEASE_GRPC_PORT" },
};

const usage = `usage: node packages/dev-stack/dist/call.js <release|change|configuration|deployment|notification> <Method> ['<json>'] [--print field.path] [--deadline seconds]
       node packages/dev-stack/dist/call.js health   (each service's grpc.health.v1 status)
  the token comes from RDM_TOKEN (e.g. RDM_TOKEN=$(./rdm token dana deployer)); the port from
  <SERVICE>_GRPC_PORT as for ./rdm up; --print prints one field of the answer (e.g. release.releaseId);
  --deadline gives up after that many seconds (default 30: DEADLINE_EXCEEDED; a command may still
  have been done, and sending it again with the same requestId does it at most once)`;

/** A service's port: its <SERVICE>_GRPC_PORT, as for ./rdm up, or the default. */
function portOf(serviceName: string): string {
  const target = SERVICES[serviceName] as (typeof SERVICES)[string];
  return process.env[target.portVariable ?? `${serviceName.toUpperCase()}_GRPC_PORT`] ?? String(target.port);
}

/** grpc.health.v1 of each service process: the server as a whole and each service it serves. */
async function printHealth() {
  const statuses: Record<string, string> = {};
  const status = (address: string, service: string) =>
    checkHealth(address, service).catch((error: { details?: string }) => `no answer (${error.details ?? error})`);
  for (const [name, { service, portVariable }] of Object.entries(SERVICES)) {
    const address = `127.0.0.1:${portOf(name)}`;
    // The process as a whole, once per process (the notification service is the release's).
    if (!portVariable) statuses[`${name} process (${address})`] = await status(address, "");
    statuses[service.typeName] = await status(address, service.typeName);
  }
  console.log(JSON.stringify(statuses, null, 2));
}

async function main() {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { print: { type: "string" }, deadline: { type: "string", default: "30" } },
  });
  const deadlineSeconds = Number(values.deadline);
  if (!(deadlineSeconds > 0)) throw new Error(`--deadline must be a number of seconds above 0\n${usage}`);
  const [serviceName = "", methodName = "", body = "{}"] = positionals;
  if (serviceName === "health") return printHealth();
  const target = SERVICES[serviceName];
  const method = target?.service.methods.find((m) => m.name === methodName || m.localName === methodName);
  if (!target) throw new Error(`${serviceName ? `no service ${serviceName}` : "no service given"}\n${usage}`);
  if (method?.methodKind !== "unary") {
    const unary = target.service.methods.filter((m) => m.methodKind === "unary").map((m) => m.name);
    throw new Error(
      `${serviceName} has no method ${methodName || "(none given)"}; its methods: ${unary.join(", ")}\n${usage}`,
    );
  }
  const token = process.env.RDM_TOKEN;
  if (!token) throw new Error(`RDM_TOKEN is not set\n${usage}`);
  const input = method.input as DescMessage;
  const json = JSON.parse(body) as Record<string, JsonValue>;
  if (input.fields.some((f) => f.localName === "requestId") && json.requestId === undefined) {
    json.requestId = randomUUID();
  }
  const port = portOf(serviceName);
  const client = createGrpcClient(target.service, `127.0.0.1:${port}`, { token }) as unknown as Record<
    string,
    (request: Message, options: { deadline: number }) => Promise<Message>
  > & { close(): void };
  const call = client[method.localName] as (request: Message, options: { deadline: number }) => Promise<Message>;
  try {
    const output = method.output as DescMessage;
    const answer = await call(fromJson(input, json), { deadline: deadlineSeconds * 1_000 });
    console.log(
      values.print ? answerField(output, answer, values.print) : JSON.stringify(toJson(output, answer), null, 2),
    );
  } catch (error) {
    if (typeof (error as { code?: unknown }).code !== "number") throw error;
    const details = errorDetails(error);
    throw new Error(
      JSON.stringify(details, (key, v) => (key === "$typeName" ? undefined : typeof v === "bigint" ? String(v) : v), 2),
    );
  } finally {
    client.close();
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
