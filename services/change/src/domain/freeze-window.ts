import { create } from "@bufbuild/protobuf";
import type { FreezeWindowEvent } from "@rdm/domain-kernel/change";
import { type FreezeScope, type FreezeWindow, FreezeWindowSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { FreezeWindowDeclaredSchema, FreezeWindowLiftedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { toInterval } from "./calendar.js";
import { changeRuleViolation } from "./rule-violation.js";

export type { FreezeWindowEvent };

export interface FreezeWindowState {
  freeze: FreezeWindow | undefined;
}

export type FreezeWindowCommand =
  | {
      kind: "declareFreeze";
      freezeWindowId: string;
      name: string;
      reason: string;
      window: TimeWindow;
      scope: FreezeScope;
    }
  | { kind: "liftFreeze"; reason: string };

export function decideFreezeWindow(command: FreezeWindowCommand, state: FreezeWindowState): FreezeWindowEvent[] {
  switch (command.kind) {
    case "declareFreeze": {
      if (state.freeze) {
        throw changeRuleViolation(
          "ALREADY_EXISTS",
          "freeze.unique_id",
          `freeze window ${command.freezeWindowId} exists`,
        );
      }
      const interval = toInterval(command.window);
      if (!interval || interval.end <= interval.start) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "freeze.window_not_empty",
          "a freeze window must end at least a millisecond after it starts (windows are counted in whole milliseconds)",
          [],
          "freeze window",
        );
      }
      const { kind: _, ...fields } = command;
      return [create(FreezeWindowDeclaredSchema, fields)];
    }
    case "liftFreeze": {
      const freeze = state.freeze;
      if (!freeze)
        throw changeRuleViolation("NOT_FOUND", "freeze.exists", "freeze window not found", [], "freeze window");
      if (freeze.lifted) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "freeze.lift.not_lifted",
          `freeze window "${freeze.name}" is already lifted`,
          [],
          "freeze window",
        );
      }
      return [
        create(FreezeWindowLiftedSchema, {
          freezeWindowId: freeze.freezeWindowId,
          reason: command.reason,
          scope: freeze.scope,
        }),
      ];
    }
  }
}

export function evolveFreezeWindow(state: FreezeWindowState, event: FreezeWindowEvent): FreezeWindowState {
  const version = event.metadata?.streamVersion ?? 1n;
  switch (event.$typeName) {
    case "rdm.change.v1.FreezeWindowDeclared": {
      const { metadata, $typeName: _, ...fields } = event;
      return { freeze: create(FreezeWindowSchema, { ...fields, declaredBy: metadata?.actor ?? "", version }) };
    }
    case "rdm.change.v1.FreezeWindowLifted":
      return state.freeze ? { freeze: create(FreezeWindowSchema, { ...state.freeze, lifted: true, version }) } : state;
    default:
      // Another kind of stream under the id asked for (a change request's, a template's): no freeze.
      return state;
  }
}

export const foldFreezeWindow = (events: readonly FreezeWindowEvent[]): FreezeWindowState =>
  events.reduce(evolveFreezeWindow, { freeze: undefined });
