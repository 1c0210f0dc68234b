import { create } from "@bufbuild/protobuf";

import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { type ReleaseRegistered, ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  type Release,
  ReleasePhase,
  ReleaseSchema,
  type ReleaseType,
  type RiskLevel,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

/** Events of the release aggregate, as protobuf messages (their $typeName is the CloudEvents type). */
export type ReleaseEvent = ReleaseRegistered;

export interface ReleaseState {
  /** Undefined until the release is registered. */
  release: Release | undefined;
}

export const initialState = (): ReleaseState => ({ release: undefined });

export interface RegisterRelease {
  kind: "registerRelease";
  releaseId: string;
  key: string;
  title: string;
  description: string;
  type: ReleaseType;
  category: string;
  owner: string;
  coordinator: string;
  stakeholders: string[];
  risk: RiskLevel;
  plannedWindow: TimeWindow | undefined;
}

export type ReleaseCommand = RegisterRelease;

/** A domain refusal: `rule` names the rule that refused, `code` says how the API reports it. */
export class ReleaseRuleViolation extends Error {
  override readonly name = "ReleaseRuleViolation";
  constructor(
    readonly code: "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "NOT_FOUND",
    readonly rule: string,
    message: string,
  ) {
    super(message);
  }
}

export function decide(command: ReleaseCommand, state: ReleaseState): ReleaseEvent[] {
  switch (command.kind) {
    case "registerRelease": {
      if (state.release) {
        throw new ReleaseRuleViolation(
          "ALREADY_EXISTS",
          "release.unique_id",
          `release ${command.releaseId} already exists`,
        );
      }
      const { kind: _, releaseId, plannedWindow, ...fields } = command;
      return [
        create(ReleaseRegisteredSchema, {
          releaseId,
          ...fields,
          ...(plannedWindow ? { plannedWindow } : {}),
          phase: ReleasePhase.REGISTRATION,
        }),
      ];
    }
  }
}

export function evolve(_state: ReleaseState, event: ReleaseEvent): ReleaseState {
  switch (event.$typeName) {
    case "rdm.release.v1.ReleaseRegistered": {
      const { metadata, $typeName: _, ...fields } = event;
      return {
        release: create(ReleaseSchema, {
          ...fields,
          registeredBy: metadata?.actor ?? "",
          ...(metadata?.occurredAt ? { registeredAt: metadata.occurredAt } : {}),
          version: metadata?.streamVersion ?? 1n,
        }),
      };
    }
  }
}

export const fold = (events: ReleaseEvent[], state = initialState()): ReleaseState => events.reduce(evolve, state);

/** Human-readable release key, e.g. REL-2026-0042 (sequence numbers per year; gaps allowed). */
export const releaseKey = (year: number, sequence: number) => `REL-${year}-${String(sequence).padStart(4, "0")}`;
