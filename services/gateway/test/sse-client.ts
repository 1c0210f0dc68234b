// A Server-Sent Events client for tests: `nextEvent()` gives the next event's id, name and data,
// past comments (keep-alives).
import { type ClientRequest, get as httpGet, type IncomingMessage } from "node:http";

export async function openStream(baseUrl: string, path: string, headers: Record<string, string>) {
  const { request, response } = await new Promise<{ request: ClientRequest; response: IncomingMessage }>(
    (resolve, reject) => {
      const request = httpGet(`${baseUrl}${path}`, { headers }, (response) => resolve({ request, response }));
      request.on("error", reject);
    },
  );
  if (!String(response.headers["content-type"]).includes("text/event-stream")) {
    request.destroy();
    throw new Error(`${path} answered ${response.statusCode} ${response.headers["content-type"]}, not a stream`);
  }
  const chunks = response.setEncoding("utf8")[Symbol.asyncIterator]();
  let buffer = "";
  // biome-ignore lint/suspicious/noExplicitAny: the tests say what shape they expect
  const nextEvent = async (): Promise<{ id: number; event: string; data: Record<string, any> }> => {
    for (;;) {
      while (!buffer.includes("\n\n")) {
        const { value, done } = await chunks.next();
        if (done) throw new Error("the stream ended");
        buffer += value;
      }
      const block = buffer.slice(0, buffer.indexOf("\n\n"));
      buffer = buffer.slice(block.length + 2);
      const field = (name: string) =>
        block
          .split("\n")
          .find((line) => line.startsWith(`${name}: `))
          ?.slice(name.length + 2);
      const id = field("id");
      if (id) return { id: Number(id), event: field("event") ?? "", data: JSON.parse(field("data") ?? "null") };
    }
  };
  return { nextEvent, close: () => request.destroy() };
}
