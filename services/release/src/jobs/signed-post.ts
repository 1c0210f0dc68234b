import { createHmac } from "node:crypto";

export const SIGNATURE_HEADER = "x-rdm-signature";
export const TIMESTAMP_HEADER = "x-rdm-timestamp";
export const NOTIFICATION_ID_HEADER = "x-rdm-notification-id";

/**
 * The signature a receiver recomputes: HMAC-SHA256 with the shared secret over
 * `<timestamp>.<body>`, hex, prefixed "sha256=". The timestamp (unix seconds, also sent in
 * x-rdm-timestamp) lets receivers refuse replays of old deliveries.
 */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/**
 * The ports fetch never connects to (the Fetch Standard's "bad port" list: SMTP, IRC, …); a URL
 * on one fails every attempt with "bad port".
 */
const FETCH_BLOCKED_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
  111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
  540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
  6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/**
 * Why no POST could ever reach the URL, or undefined when one can: only http(s) is sent to (fetch
 * would "deliver" to data: without a request and fail every attempt on file: or ftp:), on a port
 * fetch connects to, without credentials (fetch refuses them on every attempt).
 */
export function undeliverable(text: string): string | undefined {
  const url = URL.parse(text);
  if (!url) return "is not a URL fetch can read (e.g. a port above 65535, or an IPv6 zone)";
  if (url.protocol !== "https:" && url.protocol !== "http:") return "must be an http:// or https:// URL";
  if (url.username || url.password) return "must not hold credentials (user:password@): put them in the path";
  if (url.port === "0") return "port 0 is no port a delivery can be sent to";
  if (FETCH_BLOCKED_PORTS.has(Number(url.port)))
    return `port ${url.port} is one HTTP clients never connect to (the Fetch Standard's blocked ports: mail, SSH, IRC, …); use another`;
  return undefined;
}

export interface SignedPost {
  url: string;
  /** Signs the body; a target without one (a chat webhook) is sent unsigned. */
  secret: string | undefined;
  notificationId: string;
  body: string;
  now: Date;
  timeoutMs: number;
}

/** POSTs a JSON body, signed; the receiver's HTTP status (0 when unreachable) and the failure, if any. */
export async function postSigned(post: SignedPost): Promise<{ status: number; failure: string | undefined }> {
  const timestamp = String(Math.floor(post.now.getTime() / 1000));
  try {
    const response = await fetch(post.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [NOTIFICATION_ID_HEADER]: post.notificationId,
        [TIMESTAMP_HEADER]: timestamp,
        ...(post.secret ? { [SIGNATURE_HEADER]: webhookSignature(post.secret, timestamp, post.body) } : {}),
      },
      body: post.body,
      signal: AbortSignal.timeout(post.timeoutMs),
      // A redirect is a failure, not followed: a 301/302 would be followed with a GET, the body
      // dropped, and recorded as delivered.
      redirect: "manual",
    });
    // The status is the answer; the body is not read (a huge one would be held in memory).
    await response.body?.cancel().catch(() => undefined);
    if (response.ok) return { status: response.status, failure: undefined };
    const redirected = [301, 302, 303, 307, 308].includes(response.status);
    return {
      status: response.status,
      failure: redirected
        ? `HTTP ${response.status}: redirects are not followed, point the subscription at the final URL`
        : `HTTP ${response.status}`,
    };
  } catch (error) {
    const err = error as Error;
    if (err.name === "TimeoutError") return { status: 0, failure: `no answer within ${post.timeoutMs} ms` };
    // fetch says only "fetch failed"; why (a name that does not resolve, a refused connection) is its cause.
    const cause = err.cause as { message?: unknown; code?: unknown } | undefined;
    const why = [cause?.message, cause?.code].find((s) => typeof s === "string" && s);
    return { status: 0, failure: why ? `${err.message}: ${why}` : err.message };
  }
}
