import { fileURLToPath } from "node:url";

/** Path of the descriptor image (all rdm files plus imports): input of gRPC server reflection. */
export const descriptorImagePath = fileURLToPath(new URL("../image.binpb", import.meta.url));

export { type InputViolation, type InputWalkOptions, inputViolations } from "./input-rules.js";
export { instantOf } from "./instant.js";
