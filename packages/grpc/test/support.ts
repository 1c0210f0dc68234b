import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { createTokenVerifier, mintDevToken, type Role } from "@rdm/auth";
import type { Logger } from "@rdm/observability";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { createGrpcServer, type ServiceHandlers, type ServiceRegistration } from "../src/index.js";

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that records lines (with bindings from child()) so tests can assert on them. */
export function captureLogger(
  lines: LogLine[] = [],
  bindings: Record<string, unknown> = {},
): Logger & { lines: LogLine[] } {
  const write =
    (level: LogLine["level"]) =>
    (a: unknown, b?: unknown): void => {
      const fields = typeof a === "object" && a !== null ? (a as Record<string, unknown>) : {};
      const message = typeof a === "string" ? a : typeof b === "string" ? b : "";
      lines.push({ level, fields: { ...bindings, ...fields }, message });
    };
  const logger = {
    lines,
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    debug: write("debug"),
    trace: () => undefined,
    child: (more: Record<string, unknown>) => captureLogger(lines, { ...bindings, ...more }),
  };
  return logger as unknown as Logger & { lines: LogLine[] };
}

/**
 * A registration that serves only the methods a test uses: every other method of the service
 * gets a handler that throws and an admin-only roles entry (the server insists on both).
 */
export function partialRegistration<M extends GenServiceMethods>(
  service: GenService<M>,
  handlers: Partial<ServiceHandlers<M>>,
  roles: Partial<{ [K in keyof M]: readonly Role[] }>,
): ServiceRegistration<M> {
  const allHandlers: Record<string, unknown> = { ...handlers };
  const allRoles: Record<string, readonly Role[]> = { ...(roles as Record<string, readonly Role[]>) };
  for (const method of service.methods) {
    allHandlers[method.localName] ??= async () => {
      throw new Error(`${method.name} is not served in this test`);
    };
    allRoles[method.localName] ??= [];
  }
  return {
    service,
    handlers: allHandlers as ServiceHandlers<M>,
    roles: allRoles as ServiceRegistration<M>["roles"],
  };
}

/**
 * Calls a unary method with a bare grpc-js client: unlike createGrpcClient, which runs each call
 * in a CLIENT span, it sends no traceparent, as a caller without tracing does.
 */
export function callWithoutTrace<I extends DescMessage, O extends DescMessage>(
  address: string,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  token: string,
): Promise<MessageShape<O>> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise<MessageShape<O>>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${method.parent.typeName}/${method.name}`,
      (message: MessageShape<I>) => Buffer.from(toBinary(method.input, message)),
      (bytes: Buffer) => fromBinary(method.output, bytes),
      create(method.input, request),
      metadata,
      (error, response) => (error || !response ? reject(error) : resolve(response)),
    );
  }).finally(() => client.close());
}

/**
 * A server on loopback that serves only ReleaseService.GetRelease (to viewers) with `getRelease`,
 * and a viewer's token for it.
 */
export async function serveGetRelease(getRelease: ServiceHandlers<(typeof ReleaseService)["method"]>["getRelease"]) {
  const [issuer, audience, secret] = ["rdm-grpc-test", "rdm", "grpc-test-secret-long-enough-for-hs256!"];
  const server = createGrpcServer({
    logger: captureLogger(),
    verifier: createTokenVerifier({ issuer, audience, secret }),
    services: [partialRegistration(ReleaseService, { getRelease }, { getRelease: ["viewer"] })],
  });
  return {
    address: `127.0.0.1:${await server.listen("127.0.0.1", 0)}`,
    token: () => mintDevToken({ subject: "reader", roles: ["viewer"], secret, issuer, audience }),
    shutdown: () => server.shutdown(),
  };
}
