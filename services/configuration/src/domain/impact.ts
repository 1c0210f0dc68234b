// The direction impact travels and the impact walk are kernel rules: the gateway's impact
// queries apply the same ones, so they live once in @rdm/domain-kernel.
export {
  compareIds,
  type Edge,
  type ImpactOptions,
  impactDirection,
  type Reached,
  transitiveDependents,
} from "@rdm/domain-kernel/configuration";
