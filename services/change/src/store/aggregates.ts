import type { Aggregate } from "@rdm/command-handler";
import {
  type ChangeRequestEvent,
  type ChangeRequestState,
  evolve as evolveChange,
  initialState as initialChangeState,
} from "../domain/change-request.js";
import { evolveFreezeWindow, type FreezeWindowEvent, type FreezeWindowState } from "../domain/freeze-window.js";
import {
  evolveStandardChangeTemplate,
  type StandardChangeTemplateEvent,
  type StandardChangeTemplateState,
} from "../domain/standard-change-template.js";

/** Streams are named by the aggregate's UUID (the Kafka key); the category tells them apart. */
export const changeRequests: Aggregate<ChangeRequestState, ChangeRequestEvent> = {
  streamType: "change",
  initialState: initialChangeState,
  evolve: evolveChange,
};

export const freezeWindows: Aggregate<FreezeWindowState, FreezeWindowEvent> = {
  streamType: "freeze",
  initialState: () => ({ freeze: undefined }),
  evolve: evolveFreezeWindow,
};

export const standardChangeTemplates: Aggregate<StandardChangeTemplateState, StandardChangeTemplateEvent> = {
  streamType: "template",
  initialState: () => ({ template: undefined }),
  evolve: evolveStandardChangeTemplate,
};
