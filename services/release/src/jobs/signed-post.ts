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
    const redirected = response.status >= 300 && response.status < 400;
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
