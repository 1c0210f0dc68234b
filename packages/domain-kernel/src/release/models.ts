import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  type PhaseDefinition,
  PhaseDefinitionSchema,
  type ReleaseModel,
  ReleaseModelSchema,
} from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

const HOUR = 3600;
const DAY = 24 * HOUR;
export const seconds = (s: number): Duration => create(DurationSchema, { seconds: BigInt(s) });
export const durationMs = (d: Duration | undefined): number =>
  d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0;

/** Change states in which a linked change request is authorized to go ahead (or already went). */
export const AUTHORIZED_CHANGE_STATES = [
  "AUTHORIZED",
  "SCHEDULED",
  "IMPLEMENTING",
  "IMPLEMENTED",
  "REVIEWED",
  "CLOSED",
];

/** Every change state's short name ("DRAFT", "AUTHORIZED", …). */
export const CHANGE_STATE_NAMES: readonly string[] = Object.keys(ChangeState).filter(
  (name) => Number.isNaN(Number(name)) && name !== "UNSPECIFIED",
);

/**
 * A model's `linked_change_states` entry as the change state's short name ("AUTHORIZED"), the
 * form change states are recorded in; its full proto enum name ("CHANGE_STATE_AUTHORIZED") means
 * the same. Undefined for anything that is not a change state.
 */
export function changeStateName(entry: string): string | undefined {
  const name = entry.startsWith("CHANGE_STATE_") ? entry.slice("CHANGE_STATE_".length) : entry;
  return CHANGE_STATE_NAMES.includes(name) ? name : undefined;
}

const phase = (
  p: ReleasePhase,
  deadlineSeconds: number,
  rest: {
    approvals?: { approverGroup: string; quorum: number }[];
    tasks?: ReturnType<typeof task>[];
    linkedChangeStates?: string[];
  } = {},
): PhaseDefinition =>
  create(PhaseDefinitionSchema, {
    phase: p,
    ...(deadlineSeconds ? { deadline: seconds(deadlineSeconds) } : {}),
    ...rest,
  });
const task = (name: string, required: boolean, dueAfterSeconds = 0) => ({
  name,
  required,
  ...(dueAfterSeconds ? { dueAfter: seconds(dueAfterSeconds) } : {}),
});

/** The standard model (design §4): every phase, a change advisory board of two in APPROVAL. */
export const STANDARD_MODEL: ReleaseModel = create(ReleaseModelSchema, {
  name: "standard",
  version: 1,
  description: "Standard release: full ITIL phase sequence with a change advisory board approval.",
  escalationGrace: seconds(DAY),
  phases: [
    phase(ReleasePhase.REGISTRATION, 5 * DAY, { tasks: [task("Complete the release record", true, 2 * DAY)] }),
    phase(ReleasePhase.ASSESSMENT, 5 * DAY, { tasks: [task("Assess risk and impact", true, 3 * DAY)] }),
    phase(ReleasePhase.PLANNING, 10 * DAY, {
      tasks: [task("Prepare the release plan", true, 5 * DAY), task("Prepare the back-out plan", true, 5 * DAY)],
    }),
    phase(ReleasePhase.APPROVAL, 5 * DAY, {
      approvals: [{ approverGroup: "cab", quorum: 2 }],
      linkedChangeStates: AUTHORIZED_CHANGE_STATES,
    }),
    phase(ReleasePhase.BUILD_AND_TEST, 14 * DAY, {
      tasks: [task("Build the release package", true, 7 * DAY), task("Test the release package", true, 12 * DAY)],
    }),
    phase(ReleasePhase.DEPLOYMENT, 2 * DAY, { tasks: [task("Deploy the release", true, DAY)] }),
    phase(ReleasePhase.VERIFICATION, 2 * DAY, { tasks: [task("Verify the service", true, DAY)] }),
    phase(ReleasePhase.REVIEW, 10 * DAY, { tasks: [task("Hold the post-implementation review", false, 7 * DAY)] }),
    phase(ReleasePhase.CLOSED, 0),
  ],
});

/** The emergency model: short path, one emergency change advisory board approval, hour deadlines. */
export const EMERGENCY_MODEL: ReleaseModel = create(ReleaseModelSchema, {
  name: "emergency",
  version: 1,
  description: "Emergency release: shortest path, emergency approval board (ECAB).",
  escalationGrace: seconds(HOUR),
  phases: [
    phase(ReleasePhase.REGISTRATION, 2 * HOUR),
    phase(ReleasePhase.APPROVAL, 2 * HOUR, {
      approvals: [{ approverGroup: "ecab", quorum: 1 }],
      linkedChangeStates: AUTHORIZED_CHANGE_STATES,
    }),
    phase(ReleasePhase.BUILD_AND_TEST, 8 * HOUR, { tasks: [task("Build and test the fix", true, 6 * HOUR)] }),
    phase(ReleasePhase.DEPLOYMENT, 4 * HOUR, { tasks: [task("Deploy the fix", true, 2 * HOUR)] }),
    phase(ReleasePhase.REVIEW, 5 * DAY),
    phase(ReleasePhase.CLOSED, 0),
  ],
});

export const DEFAULT_MODELS: readonly ReleaseModel[] = [STANDARD_MODEL, EMERGENCY_MODEL];

export const defaultModelName = (type: ReleaseType) => (type === ReleaseType.EMERGENCY ? "emergency" : "standard");
