import { create } from "@bufbuild/protobuf";
import {
  CiLifecycleStatus,
  type CiType,
  type ConfigurationItem,
  ConfigurationItemSchema,
  type Relationship,
  RelationshipSchema,
  RelationshipType,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type ConfigurationItemRegistered,
  ConfigurationItemRegisteredSchema,
  type ConfigurationItemStatusChanged,
  ConfigurationItemStatusChangedSchema,
  type ConfigurationItemUpdated,
  ConfigurationItemUpdatedSchema,
  type RelationshipAdded,
  RelationshipAddedSchema,
  type RelationshipRemoved,
  RelationshipRemovedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { configurationRuleViolation } from "./rule-violation.js";

/** Events of a configuration item's stream (relationships live on their source's stream). */
export type ConfigurationItemEvent =
  | ConfigurationItemRegistered
  | ConfigurationItemUpdated
  | ConfigurationItemStatusChanged
  | RelationshipAdded
  | RelationshipRemoved;

export interface ConfigurationItemState {
  item: ConfigurationItem | undefined;
}

export const initialState = (): ConfigurationItemState => ({ item: undefined });

export interface RegisterConfigurationItem {
  kind: "registerConfigurationItem";
  ciId: string;
  name: string;
  type: CiType;
  owner: string;
  status: CiLifecycleStatus;
  attributes: Record<string, string>;
}

export interface UpdateConfigurationItem {
  kind: "updateConfigurationItem";
  name: string;
  owner: string;
  setAttributes: Record<string, string>;
  removedAttributes: string[];
}

export interface ChangeConfigurationItemStatus {
  kind: "changeConfigurationItemStatus";
  status: CiLifecycleStatus;
}

export interface AddRelationship {
  kind: "addRelationship";
  type: RelationshipType;
  /** The target as the API found it; undefined when it does not exist. */
  target: ConfigurationItem | undefined;
  targetCiId: string;
}

export interface RemoveRelationship {
  kind: "removeRelationship";
  type: RelationshipType;
  targetCiId: string;
}

export type ConfigurationItemCommand =
  | RegisterConfigurationItem
  | UpdateConfigurationItem
  | ChangeConfigurationItemStatus
  | AddRelationship
  | RemoveRelationship;

const sameRelationship = (r: Relationship, type: RelationshipType, target: string) =>
  r.type === type && r.targetCiId === target;

function existing(state: ConfigurationItemState): ConfigurationItem {
  if (!state.item) throw configurationRuleViolation("NOT_FOUND", "ci.exists", "configuration item not found");
  return state.item;
}

export function decide(command: ConfigurationItemCommand, state: ConfigurationItemState): ConfigurationItemEvent[] {
  switch (command.kind) {
    case "registerConfigurationItem":
      return registerConfigurationItem(command, state);
    case "updateConfigurationItem":
      return updateConfigurationItem(command, state);
    case "changeConfigurationItemStatus":
      return changeConfigurationItemStatus(command, state);
    case "addRelationship":
      return addRelationship(command, state);
    case "removeRelationship":
      return removeRelationship(command, state);
    default:
      return unknownCommand(command);
  }
}

function unknownCommand(command: never): never {
  throw new Error(`unknown configuration item command ${(command as { kind?: unknown }).kind}`);
}

function registerConfigurationItem(
  command: RegisterConfigurationItem,
  state: ConfigurationItemState,
): ConfigurationItemEvent[] {
  if (state.item) {
    throw configurationRuleViolation(
      "ALREADY_EXISTS",
      "ci.unique_id",
      `configuration item ${command.ciId} already exists`,
    );
  }
  const { kind: _, status, ...fields } = command;
  return [
    create(ConfigurationItemRegisteredSchema, {
      ...fields,
      status: status === CiLifecycleStatus.UNSPECIFIED ? CiLifecycleStatus.LIVE : status,
    }),
  ];
}

function updateConfigurationItem(
  command: UpdateConfigurationItem,
  state: ConfigurationItemState,
): ConfigurationItemEvent[] {
  const item = existing(state);
  if (item.status === CiLifecycleStatus.RETIRED) {
    throw configurationRuleViolation(
      "FAILED_PRECONDITION",
      "ci.retired_is_read_only",
      `configuration item ${item.ciId} is retired and cannot be changed`,
      item.ciId,
    );
  }
  const setAttributes = Object.fromEntries(
    Object.entries(command.setAttributes).filter(([key, value]) => item.attributes[key] !== value),
  );
  const removedAttributes = command.removedAttributes.filter((key) => key in item.attributes);
  const name = command.name && command.name !== item.name ? command.name : "";
  const owner = command.owner && command.owner !== item.owner ? command.owner : "";
  // Nothing would change: record nothing (the command is still answered with the item).
  if (!name && !owner && Object.keys(setAttributes).length === 0 && removedAttributes.length === 0) return [];
  return [create(ConfigurationItemUpdatedSchema, { ciId: item.ciId, name, owner, setAttributes, removedAttributes })];
}

function changeConfigurationItemStatus(
  command: ChangeConfigurationItemStatus,
  state: ConfigurationItemState,
): ConfigurationItemEvent[] {
  const item = existing(state);
  if (item.status === command.status) return [];
  if (item.status === CiLifecycleStatus.RETIRED) {
    throw configurationRuleViolation(
      "FAILED_PRECONDITION",
      "ci.retired_is_final",
      `configuration item ${item.ciId} is retired; its status cannot change`,
      item.ciId,
    );
  }
  return [create(ConfigurationItemStatusChangedSchema, { ciId: item.ciId, from: item.status, to: command.status })];
}

function addRelationship(command: AddRelationship, state: ConfigurationItemState): ConfigurationItemEvent[] {
  const item = existing(state);
  if (command.targetCiId === item.ciId) {
    throw configurationRuleViolation(
      "FAILED_PRECONDITION",
      "relationship.no_self_reference",
      "a configuration item cannot be related to itself",
      item.ciId,
    );
  }
  if (!command.target) {
    throw configurationRuleViolation(
      "NOT_FOUND",
      "relationship.target_exists",
      `target configuration item ${command.targetCiId} not found`,
      command.targetCiId,
    );
  }
  for (const ci of [item, command.target]) {
    if (ci.status === CiLifecycleStatus.RETIRED) {
      throw configurationRuleViolation(
        "FAILED_PRECONDITION",
        "relationship.no_retired_items",
        `configuration item ${ci.ciId} is retired and cannot gain relationships`,
        ci.ciId,
      );
    }
  }
  // Re-adding an existing relationship changes nothing (idempotent by content).
  if (item.relationships.some((r) => sameRelationship(r, command.type, command.targetCiId))) return [];
  return [
    create(RelationshipAddedSchema, {
      relationship: { sourceCiId: item.ciId, type: command.type, targetCiId: command.targetCiId },
    }),
  ];
}

function removeRelationship(command: RemoveRelationship, state: ConfigurationItemState): ConfigurationItemEvent[] {
  const item = existing(state);
  if (!item.relationships.some((r) => sameRelationship(r, command.type, command.targetCiId))) {
    throw configurationRuleViolation(
      "NOT_FOUND",
      "relationship.exists",
      `${item.ciId} has no ${RelationshipType[command.type]} relationship to ${command.targetCiId}`,
      item.ciId,
    );
  }
  return [
    create(RelationshipRemovedSchema, {
      relationship: { sourceCiId: item.ciId, type: command.type, targetCiId: command.targetCiId },
    }),
  ];
}

function touched(item: ConfigurationItem, event: ConfigurationItemEvent): ConfigurationItem {
  return {
    ...item,
    ...(event.metadata?.occurredAt ? { updatedAt: event.metadata.occurredAt } : {}),
    version: event.metadata?.streamVersion ?? item.version + 1n,
  };
}

export function evolve(state: ConfigurationItemState, event: ConfigurationItemEvent): ConfigurationItemState {
  switch (event.$typeName) {
    case "rdm.configuration.v1.ConfigurationItemRegistered": {
      const { metadata, $typeName: _, ...fields } = event;
      const item = create(ConfigurationItemSchema, {
        ...fields,
        ...(metadata?.occurredAt ? { createdAt: metadata.occurredAt, updatedAt: metadata.occurredAt } : {}),
        version: metadata?.streamVersion ?? 1n,
      });
      return { item };
    }
    case "rdm.configuration.v1.ConfigurationItemUpdated": {
      if (!state.item) return state;
      const attributes = { ...state.item.attributes, ...event.setAttributes };
      for (const key of event.removedAttributes) delete attributes[key];
      return {
        item: touched(
          {
            ...state.item,
            name: event.name || state.item.name,
            owner: event.owner || state.item.owner,
            attributes,
          },
          event,
        ),
      };
    }
    case "rdm.configuration.v1.ConfigurationItemStatusChanged":
      if (!state.item) return state;
      return { item: touched({ ...state.item, status: event.to }, event) };
    case "rdm.configuration.v1.RelationshipAdded": {
      if (!state.item || !event.relationship) return state;
      const relationship = create(RelationshipSchema, event.relationship);
      return { item: touched({ ...state.item, relationships: [...state.item.relationships, relationship] }, event) };
    }
    case "rdm.configuration.v1.RelationshipRemoved": {
      const removed = event.relationship;
      if (!state.item || !removed) return state;
      return {
        item: touched(
          {
            ...state.item,
            relationships: state.item.relationships.filter(
              (r) => !sameRelationship(r, removed.type, removed.targetCiId),
            ),
          },
          event,
        ),
      };
    }
    default:
      // Not a configuration item's event (a stream of another kind): nothing to apply.
      return state;
  }
}

export const fold = (events: ConfigurationItemEvent[], state = initialState()): ConfigurationItemState =>
  events.reduce(evolve, state);

/** One line describing a change, for history views. */
export function describeChange(event: ConfigurationItemEvent): string {
  switch (event.$typeName) {
    case "rdm.configuration.v1.ConfigurationItemRegistered":
      return `registered "${event.name}"`;
    case "rdm.configuration.v1.ConfigurationItemUpdated": {
      const parts: string[] = [];
      if (event.name) parts.push(`name -> "${event.name}"`);
      if (event.owner) parts.push(`owner -> ${event.owner}`);
      for (const [key, value] of Object.entries(event.setAttributes)) parts.push(`${key} = "${value}"`);
      for (const key of event.removedAttributes) parts.push(`${key} removed`);
      return `updated: ${parts.join(", ")}`;
    }
    case "rdm.configuration.v1.ConfigurationItemStatusChanged":
      return `status ${CiLifecycleStatus[event.from]} -> ${CiLifecycleStatus[event.to]}`;
    case "rdm.configuration.v1.RelationshipAdded":
      return `${RelationshipType[event.relationship?.type ?? 0]} ${event.relationship?.targetCiId} added`;
    case "rdm.configuration.v1.RelationshipRemoved":
      return `${RelationshipType[event.relationship?.type ?? 0]} ${event.relationship?.targetCiId} removed`;
  }
}
