/** Every role the platform knows (design §5). */
export const ROLES = [
  "release-manager",
  "release-coordinator",
  "approver",
  "change-manager",
  "config-manager",
  "deployer",
  "viewer",
  "admin",
  // CI/CD agents that claim and perform deployment steps (the deployment service's executor protocol).
  "executor",
] as const;

export type Role = (typeof ROLES)[number];

const known = new Set<string>(ROLES);

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && known.has(value);
}

/** Who made a call, as established by a verified token. */
export interface Principal {
  /** `sub` claim: the user or workload; recorded as the actor on every event. */
  subject: string;
  /** Known roles from the `roles` claim; unknown role names are dropped. */
  roles: Role[];
  /**
   * `groups` claim: the approval boards and teams the identity provider puts the subject in
   * (e.g. "cab", "ecab"); empty when the token has none.
   */
  groups: string[];
  /** `name` claim, when present. */
  name?: string;
}

/** True when the principal holds one of `allowed`. `admin` is allowed everything. */
export function hasAnyRole(principal: Principal, allowed: readonly Role[]): boolean {
  return principal.roles.some((role) => role === "admin" || allowed.includes(role));
}

/** The roles that may call what `allowed` names: those and `admin`, which may call anything. */
export const permittedRoles = (allowed: readonly Role[]): Role[] => [...new Set<Role>([...allowed, "admin"])];

/** Why hasAnyRole refused: the roles that would do (`admin` among them) and the caller's. */
export const missingRoleMessage = (principal: Principal, allowed: readonly Role[]): string =>
  `requires one of the roles: ${permittedRoles(allowed).join(", ")} (caller has: ${principal.roles.join(", ") || "none"})`;

/** Every human role: each may read releases, changes, configuration and deployments (design §5). */
export const READER_ROLES = [
  "viewer",
  "release-manager",
  "release-coordinator",
  "approver",
  "change-manager",
  "deployer",
  "config-manager",
] as const satisfies readonly Role[];
