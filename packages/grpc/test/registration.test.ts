import { createTokenVerifier } from "@rdm/auth";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { createGrpcServer } from "../src/index.js";
import { captureLogger, partialRegistration } from "./support.js";

const verifier = createTokenVerifier({ issuer: "t", audience: "t", secret: "s".repeat(32) });
const handlers = {
  registerRelease: async () => ({}),
  getRelease: async () => ({}),
};

describe("service registration is checked at startup", () => {
  test("a method without a roles entry is refused (no silent open RPC)", () => {
    expect(() =>
      createGrpcServer({
        logger: captureLogger(),
        verifier,
        services: [
          {
            service: ReleaseService,
            handlers: handlers as never,
            roles: { registerRelease: ["release-manager"] } as never,
          },
        ],
      }),
    ).toThrow(/rdm\.release\.v1\.ReleaseService\.GetRelease \(getRelease\): no roles entry/);
  });

  test("a missing handler, an unknown role and a stray entry are all reported", () => {
    let message = "";
    try {
      createGrpcServer({
        logger: captureLogger(),
        verifier,
        services: [
          {
            service: ReleaseService,
            handlers: { registerRelease: handlers.registerRelease } as never,
            roles: {
              registerRelease: ["release-manager"],
              getRelease: ["superuser" as never],
              listThings: [],
            } as never,
          },
        ],
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/GetRelease \(getRelease\): no handler/);
    expect(message).toMatch(/GetRelease \(getRelease\): unknown role "superuser"/);
    expect(message).toMatch(/roles entry "listThings" matches no method/);
  });

  test("a complete registration is accepted", async () => {
    const server = createGrpcServer({
      logger: captureLogger(),
      verifier,
      services: [
        partialRegistration(ReleaseService, handlers, { registerRelease: ["release-manager"], getRelease: ["viewer"] }),
      ],
    });
    await server.shutdown();
  });
});
