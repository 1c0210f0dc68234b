import { clone } from "@bufbuild/protobuf";
import { subjectKey } from "@rdm/auth";
import { CHANGE_STATE_NAMES, changeStateName } from "@rdm/domain-kernel/release";
import { type PhaseDefinition, type ReleaseModel, ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

// The default models and the duration helpers are the shared kernel's (the gateway shows the
// same models); only the validation of a submitted model is the service's own.
export {
  AUTHORIZED_CHANGE_STATES,
  DEFAULT_MODELS,
  defaultModelName,
  durationMs,
  EMERGENCY_MODEL,
  STANDARD_MODEL,
  seconds,
} from "@rdm/domain-kernel/release";

export class InvalidModel extends Error {
  override readonly name = "InvalidModel";
  constructor(
    readonly rule: string,
    message: string,
    /** The field at fault, as a BadRequest field path. */
    readonly field = "model.phases",
  ) {
    super(message);
  }
}

/**
 * The model as it is stored: each `linked_change_states` entry as the change state's short name
 * (what the gate compares with), whether it was given so or as the proto enum name; an entry that
 * is no change state is refused, since no linked change could ever meet it.
 */
export function normalizeModel(model: ReleaseModel): ReleaseModel {
  const normalized = clone(ReleaseModelSchema, model);
  normalized.phases.forEach((phase, i) => {
    phase.linkedChangeStates = phase.linkedChangeStates.map((entry, j) => {
      const name = changeStateName(entry);
      if (name) return name;
      throw new InvalidModel(
        "model.linked_change_state",
        `"${entry}" is not a change state; use one of ${CHANGE_STATE_NAMES.join(", ")} (or its CHANGE_STATE_ name)`,
        `model.phases[${i}].linked_change_states[${j}]`,
      );
    });
  });
  return normalized;
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
      // Members as votes count them: "Ann" and "ann" are one approver.
      const members = new Set(a.members.map(subjectKey)).size;
      if (a.members.length && members < a.quorum)
        throw new InvalidModel(
          "model.quorum_reachable",
          `group ${a.approverGroup} has fewer members than its quorum (${members} distinct of ${a.quorum}: names are compared without case)`,
        );
    }
  }
}
