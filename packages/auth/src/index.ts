export { type MintDevTokenOptions, mintDevToken } from "./mint.js";
export {
  hasAnyRole,
  isRole,
  missingRoleMessage,
  type Principal,
  permittedRoles,
  READER_ROLES,
  ROLES,
  type Role,
} from "./roles.js";
export { sameSubject, subjectKey } from "./subjects.js";
export {
  createTokenVerifier,
  subjectProblem,
  type TokenVerifier,
  type TokenVerifierOptions,
  Unauthenticated,
  type UnauthenticatedReason,
} from "./verifier.js";
