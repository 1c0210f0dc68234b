// A webhook receiver on loopback for notification tests: records every POST with its path,
// headers and payload; /down answers 503, a held path nothing until released, a path told to
// fail once 503 the first time, any other path 204. Also the payload schema's validator.
import { readFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { webhookSignature } from "../src/jobs/signed-post.js";
import type { NotificationPayload } from "../src/notifier/payload.js";

export interface Received {
  path: string;
  notificationId: string;
  timestamp: string;
  signature: string;
  body: string;
  payload: NotificationPayload;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** What one path received. */
  at(path: string): Received[];
  /**
   * Leaves the POSTs to `path` unanswered until release(); waiting() tells whether every one
   * of them is still open (its sender has not given up on it).
   */
  hold(path: string): { waiting(): boolean; release(): void };
  /** Answers the next POST to `path` 503, the ones after it 204. */
  failOnce(path: string): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const held = new Map<string, { responses: ServerResponse[]; closed: number }>();
  const failing = new Set<string>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({
        path: String(request.url),
        notificationId: String(request.headers["x-rdm-notification-id"]),
        timestamp: String(request.headers["x-rdm-timestamp"]),
        signature: String(request.headers["x-rdm-signature"]),
        body,
        payload: JSON.parse(body),
      });
      response.statusCode = request.url === "/down" || failing.delete(String(request.url)) ? 503 : 204;
      const holding = held.get(String(request.url));
      if (!holding) return response.end();
      holding.responses.push(response);
      response.on("close", () => {
        if (!response.writableEnded) holding.closed++;
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    at: (path) => received.filter((r) => r.path === path),
    hold(path) {
      const holding = { responses: [] as ServerResponse[], closed: 0 };
      held.set(path, holding);
      return {
        waiting: () => holding.responses.length > 0 && holding.closed === 0,
        release() {
          held.delete(path);
          for (const response of holding.responses) if (!response.destroyed) response.end();
        },
      };
    },
    failOnce: (path) => failing.add(path),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Whether the delivery carries a valid signature for `secret`. */
export const signedWith = (r: Received, secret: string) =>
  r.signature === webhookSignature(secret, r.timestamp, r.body);

const schema = JSON.parse(readFileSync(new URL("../notification-payload.schema.json", import.meta.url), "utf8"));
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats.default(ajv);
const validate = ajv.compile(schema);

/** The schema's complaints about a payload; empty when it validates. */
export function schemaErrors(payload: unknown): string[] {
  return validate(payload) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}
