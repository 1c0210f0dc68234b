import {
  ChangeRequestDetailsUpdatedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestScheduledSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";

/**
 * The change events that name every environment of the change: its raise, schedule and detail
 * updates. Its other events name none (or one of them, a deployment's): a read side places them by
 * what the change's last such event said.
 */
export const ENVIRONMENT_NAMING_SCHEMAS = [
  ChangeRequestRaisedSchema,
  ChangeRequestScheduledSchema,
  ChangeRequestDetailsUpdatedSchema,
] as const;

export const namesChangeEnvironments = (type: string) => ENVIRONMENT_NAMING_SCHEMAS.some((s) => s.typeName === type);
