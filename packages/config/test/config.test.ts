import { ConfigError, grpcServiceEnv, loadConfig } from "../src/index.js";

const valid = {
  DATABASE_URL: "postgres://u:p@127.0.0.1:5432/rdm_release",
  KAFKA_BROKERS: "127.0.0.1:9092, 127.0.0.1:9093",
  AUTH_JWT_SECRET: "x".repeat(32),
};

test("parses and applies defaults", () => {
  const config = loadConfig(grpcServiceEnv(50051), valid);
  expect(config.GRPC_PORT).toBe(50051);
  expect(config.KAFKA_BROKERS).toEqual(["127.0.0.1:9092", "127.0.0.1:9093"]);
  expect(config.AUTH_ISSUER).toBe("rdm");
  expect(config.KAFKA_TOPIC_PREFIX).toBe("");
});

test("a topic prefix may only hold characters Kafka allows in topic names", () => {
  expect(loadConfig(grpcServiceEnv(50051), { ...valid, KAFKA_TOPIC_PREFIX: "staging." }).KAFKA_TOPIC_PREFIX).toBe(
    "staging.",
  );
  expect(() => loadConfig(grpcServiceEnv(50051), { ...valid, KAFKA_TOPIC_PREFIX: "staging/" })).toThrow(
    /KAFKA_TOPIC_PREFIX: letters, digits/,
  );
});

test("lists every problem in one error", () => {
  let error: unknown;
  try {
    loadConfig(grpcServiceEnv(50051), { DATABASE_URL: "mysql://x", GRPC_PORT: "99999" });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const problems = (error as ConfigError).problems.join("\n");
  expect(problems).toMatch(/DATABASE_URL: must be a postgres:\/\/ URL/);
  expect(problems).toMatch(/KAFKA_BROKERS: .*\(not set\)/);
  expect(problems).toMatch(/GRPC_PORT/);
});

test("refuses to start without a token verification key", () => {
  const { AUTH_JWT_SECRET: _, ...withoutKey } = valid;
  expect(() => loadConfig(grpcServiceEnv(50051), withoutKey)).toThrow(
    /one of AUTH_JWT_SECRET, AUTH_PUBLIC_KEY or AUTH_JWKS_URL/,
  );
});
