import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
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

export class InvalidModel extends Error {
  override readonly name = "InvalidModel";
  constructor(
    readonly rule: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The rules a model must follow beyond field validation: phases in the standard order without
 * repeats, starting with REGISTRATION and ending with CLOSED, which has no work of its own.
 */
export function validateModel(model: ReleaseModel): void {
  const phases = model.phases.map((p) => p.phase);
  if (phases[0] !== ReleasePhase.REGISTRATION)
    throw new InvalidModel("model.first_phase", "the first phase must be REGISTRATION");
  if (phases[phases.length - 1] !== ReleasePhase.CLOSED)
    throw new InvalidModel("model.last_phase", "the last phase must be CLOSED");
  for (let i = 1; i < phases.length; i++) {
    if ((phases[i] as number) <= (phases[i - 1] as number))
      throw new InvalidModel("model.phase_order", "phases must be unique and in the standard order");
  }
  const closed = model.phases[model.phases.length - 1] as PhaseDefinition;
  if (closed.approvals.length || closed.tasks.length || closed.deadline)
    throw new InvalidModel("model.closed_phase_empty", "CLOSED can have no approvals, tasks or deadline");
  for (const p of model.phases) {
    const groups = p.approvals.map((a) => a.approverGroup);
    if (new Set(groups).size !== groups.length)
      throw new InvalidModel("model.approver_group_unique", "an approver group appears twice in one phase");
    for (const a of p.approvals) {
      if (a.members.length && a.members.length < a.quorum)
        throw new InvalidModel("model.quorum_reachable", `group ${a.approverGroup} has fewer members than its quorum`);
    }
  }
}
