import { create } from "@bufbuild/protobuf";
import type { StandardChangeTemplateEvent } from "@rdm/domain-kernel/change";
import {
  type ChangeRisk,
  type StandardChangeTemplate,
  StandardChangeTemplateSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  StandardChangeTemplateRegisteredSchema,
  StandardChangeTemplateRetiredSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "./rule-violation.js";

export type { StandardChangeTemplateEvent };

export interface StandardChangeTemplateState {
  template: StandardChangeTemplate | undefined;
}

export type StandardChangeTemplateCommand =
  | {
      kind: "registerTemplate";
      templateId: string;
      name: string;
      description: string;
      implementationPlan: string;
      testPlan: string;
      backoutPlan: string;
      risk: ChangeRisk;
    }
  | { kind: "retireTemplate"; reason: string };

export function decideStandardChangeTemplate(
  command: StandardChangeTemplateCommand,
  state: StandardChangeTemplateState,
): StandardChangeTemplateEvent[] {
  switch (command.kind) {
    case "registerTemplate": {
      if (state.template) {
        throw changeRuleViolation(
          "ALREADY_EXISTS",
          "standard_change.template_unique_id",
          `template ${command.templateId} exists`,
        );
      }
      const { kind: _, ...fields } = command;
      return [create(StandardChangeTemplateRegisteredSchema, fields)];
    }
    case "retireTemplate": {
      const template = state.template;
      if (!template) {
        throw changeRuleViolation(
          "NOT_FOUND",
          "standard_change.template_exists",
          "standard change template not found",
          [],
          "standard change template",
        );
      }
      if (template.retired) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "standard_change.template_active",
          `standard change template "${template.name}" is already retired`,
          [],
          "standard change template",
        );
      }
      return [create(StandardChangeTemplateRetiredSchema, { templateId: template.templateId, reason: command.reason })];
    }
  }
}

export function evolveStandardChangeTemplate(
  state: StandardChangeTemplateState,
  event: StandardChangeTemplateEvent,
): StandardChangeTemplateState {
  const version = event.metadata?.streamVersion ?? 1n;
  switch (event.$typeName) {
    case "rdm.change.v1.StandardChangeTemplateRegistered": {
      const { metadata, $typeName: _, ...fields } = event;
      return {
        template: create(StandardChangeTemplateSchema, { ...fields, registeredBy: metadata?.actor ?? "", version }),
      };
    }
    case "rdm.change.v1.StandardChangeTemplateRetired":
      return state.template
        ? { template: create(StandardChangeTemplateSchema, { ...state.template, retired: true, version }) }
        : state;
    default:
      // Another kind of stream under the id asked for (a change request's, a freeze's): no template.
      return state;
  }
}

export const foldStandardChangeTemplate = (
  events: readonly StandardChangeTemplateEvent[],
): StandardChangeTemplateState => events.reduce(evolveStandardChangeTemplate, { template: undefined });
