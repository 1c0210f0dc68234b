import { ChangeBoard, ChangeImpact, ChangeRisk, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";

/**
 * Risk from impact x urgency (each LOW=1 .. HIGH=3), by their sum:
 *
 * |            | urgency LOW | MEDIUM | HIGH     |
 * | impact LOW | LOW         | LOW    | MEDIUM   |
 * | MEDIUM     | LOW         | MEDIUM | HIGH     |
 * | HIGH       | MEDIUM      | HIGH   | CRITICAL |
 */
export function riskOf(impact: ChangeImpact, urgency: ChangeUrgency): ChangeRisk {
  if (impact === ChangeImpact.UNSPECIFIED || urgency === ChangeUrgency.UNSPECIFIED) return ChangeRisk.UNSPECIFIED;
  const score = impact + urgency;
  if (score <= 3) return ChangeRisk.LOW;
  if (score === 4) return ChangeRisk.MEDIUM;
  if (score === 5) return ChangeRisk.HIGH;
  return ChangeRisk.CRITICAL;
}

// The board a change type goes to is a kernel rule: the gateway's CAB board derives it too.
export { boardFor } from "@rdm/domain-kernel/change";

/**
 * Default quorum when the assessor does not set one: the ECAB decides fast with one approval;
 * the CAB needs one approval for low risk, two for medium, three for high and critical.
 */
export function defaultQuorum(board: ChangeBoard, risk: ChangeRisk): number {
  if (board === ChangeBoard.PRE_AUTHORIZED) return 0;
  if (board === ChangeBoard.ECAB) return 1;
  switch (risk) {
    case ChangeRisk.HIGH:
    case ChangeRisk.CRITICAL:
      return 3;
    case ChangeRisk.MEDIUM:
      return 2;
    default:
      return 1;
  }
}
