// A webhook send that reaches no receiver says why (fetch's own message is only "fetch failed"),
// so a delivery's last_error and the log tell an operator what to mend. A redirect is a failure
// (following a 301/302 would drop the body), the receiver's answer body is never read, and a
// chat target's failure never quotes its URL (the credential).
import { createServer as createHttpServer, type RequestListener } from "node:http";
import { createServer } from "node:net";
import { create } from "@bufbuild/protobuf";
import { SubscriptionSchema } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { postSigned, undeliverable } from "../src/jobs/signed-post.js";
import { sendToTarget } from "../src/jobs/subscription-delivery.js";
import type { NotificationPayload } from "../src/notifier/payload.js";

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a refused connection is recorded with its cause", async () => {
  const result = await postSigned({
    url: `http://127.0.0.1:${await closedPort()}/hook`,
    secret: undefined,
    notificationId: "n-1",
    body: "{}",
    now: new Date(),
    timeoutMs: 5_000,
  });
  expect(result).toEqual({ status: 0, failure: expect.stringMatching(/^fetch failed: .*ECONNREFUSED/) });
});

test("every port a target URL is refused for is one fetch never connects to", async () => {
  const refused = Array.from({ length: 10_100 }, (_, i) => i + 1).filter((port) =>
    undeliverable(`http://127.0.0.1:${port}/hook`)?.startsWith(`port ${port} `),
  );
  expect(refused).toEqual(expect.arrayContaining([25, 587, 6667, 10080]));
  expect(refused).not.toContain(8080);
  const sends = refused.map((port) =>
    postSigned({
      url: `http://127.0.0.1:${port}/hook`,
      secret: undefined,
      notificationId: "n-1",
      body: "{}",
      now: new Date(),
      timeoutMs: 5_000,
    }),
  );
  expect(new Set((await Promise.all(sends)).map((r) => r.failure))).toEqual(new Set(["fetch failed: bad port"]));
});

/** A loopback HTTP receiver answering with `listener`; its URL and how to stop it. */
async function receiver(listener: RequestListener) {
  const server = createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hook`,
    stop: () => new Promise((resolve) => server.close(resolve).closeAllConnections()),
  };
}

const send = (url: string) =>
  postSigned({ url, secret: "s", notificationId: "n-1", body: "{}", now: new Date(), timeoutMs: 60_000 });

test("a redirect is a failure, not followed; another 3xx is a failure of its own", async () => {
  const followed: string[] = [];
  const target = await receiver((request, response) => {
    if (request.url === "/hook") {
      response.writeHead(302, { location: "/elsewhere" }).end();
    } else if (request.url === "/not-modified") {
      response.writeHead(304).end();
    } else {
      followed.push(`${request.method} ${request.url}`);
      response.writeHead(200).end();
    }
  });
  try {
    expect(await send(target.url)).toEqual({
      status: 302,
      failure: "HTTP 302: redirects are not followed, point the subscription at the final URL",
    });
    expect(followed).toEqual([]);
    expect(await send(target.url.replace("/hook", "/not-modified"))).toEqual({ status: 304, failure: "HTTP 304" });
  } finally {
    await target.stop();
  }
});

test("the answer's body is not read: one that never ends does not hold the send", async () => {
  // Headers and a first chunk, then nothing more: a send that read the body would wait for the
  // whole 60 s timeout (the test's own timeout fails it first).
  const target = await receiver((_request, response) => {
    response.writeHead(200, { "content-type": "application/octet-stream" });
    response.write(Buffer.alloc(64 * 1024));
  });
  try {
    expect(await send(target.url)).toEqual({ status: 200, failure: undefined });
  } finally {
    await target.stop();
  }
});

test("a chat target's failure shows its URL, the credential, only as its origin", async () => {
  // Stored before URLs were checked at create: fetch's error quotes the whole URL.
  const url = "http://127.0.0.1:99999/services/T000/CHAT-TOKEN";
  const subscription = create(SubscriptionSchema, {
    target: { kind: { case: "chat", value: { url: "http://127.0.0.1:99999/…", template: "{{title}}" } } },
  });
  const payload = { notificationId: "n-1", title: "t", links: {} } as unknown as NotificationPayload;
  const { failure } = await sendToTarget(subscription, url, payload, new Date(), 5_000);
  expect(failure).toContain("http://127.0.0.1:99999/…");
  expect(failure).not.toContain("CHAT-TOKEN");
});
