// The release service's settings are checked at start, each refusal naming its variable.
import { releaseEnv } from "../src/service.js";

const refusals = (env: Record<string, string>) => {
  const parsed = releaseEnv.safeParse(env);
  return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
};
const secret = "0123456789abcdef0";

test("a default webhook URL no delivery could reach is refused at start, saying why", () => {
  expect(refusals({ RELEASE_WEBHOOK_URL: "http://127.0.0.1:25/hook", RELEASE_WEBHOOK_SECRET: secret })).toEqual([
    expect.stringMatching(/^RELEASE_WEBHOOK_URL: port 25 is one HTTP clients never connect to/),
  ]);
  expect(refusals({ RELEASE_WEBHOOK_URL: "http://user:pw@hooks.example/in", RELEASE_WEBHOOK_SECRET: secret })).toEqual([
    expect.stringMatching(/^RELEASE_WEBHOOK_URL: must not hold credentials/),
  ]);
  expect(refusals({ RELEASE_WEBHOOK_URL: "https://hooks.example/in" })).toEqual([
    expect.stringMatching(/^RELEASE_WEBHOOK_SECRET: .*required/),
  ]);
  expect(refusals({ RELEASE_WEBHOOK_URL: "https://hooks.example/in", RELEASE_WEBHOOK_SECRET: secret })).toEqual([]);
});
