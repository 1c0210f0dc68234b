import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  ListStandardChangeTemplatesResponseSchema,
  RegisterStandardChangeTemplateResponseSchema,
  RetireStandardChangeTemplateResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { decideStandardChangeTemplate } from "../domain/standard-change-template.js";
import { standardChangeTemplates } from "../store/aggregates.js";
import { listTemplates, saveTemplate } from "../store/read-model.js";

import { type ChangeHandlers, type ChangeRpcDeps, changeCommandRpc } from "./change-rpc.js";

/** The catalog of standard change templates. */
export function standardChangeTemplateHandlers(
  deps: ChangeRpcDeps,
): Pick<
  ChangeHandlers,
  "registerStandardChangeTemplate" | "retireStandardChangeTemplate" | "listStandardChangeTemplates"
> {
  const { pool } = deps;
  const { command, M } = changeCommandRpc(deps);
  return {
    async registerStandardChangeTemplate(request, ctx) {
      const templateId = randomUUID();
      return command(M.registerStandardChangeTemplate, request, ctx, {
        aggregate: standardChangeTemplates,
        streamId: templateId,
        output: RegisterStandardChangeTemplateResponseSchema,
        decide: (state) =>
          decideStandardChangeTemplate(
            {
              kind: "registerTemplate",
              templateId,
              name: request.name,
              description: request.description,
              implementationPlan: request.implementationPlan,
              testPlan: request.testPlan,
              backoutPlan: request.backoutPlan,
              risk: request.risk,
            },
            state,
          ),
        project: async (client, state) => {
          if (state.template) await saveTemplate(client, state.template);
        },
        respond: ({ after }) =>
          create(RegisterStandardChangeTemplateResponseSchema, after.template ? { template: after.template } : {}),
      });
    },

    async retireStandardChangeTemplate(request, ctx) {
      return command(M.retireStandardChangeTemplate, request, ctx, {
        aggregate: standardChangeTemplates,
        streamId: request.templateId,
        output: RetireStandardChangeTemplateResponseSchema,
        decide: (state) => decideStandardChangeTemplate({ kind: "retireTemplate", reason: request.reason }, state),
        project: async (client, state) => {
          if (state.template) await saveTemplate(client, state.template);
        },
        respond: ({ after }) =>
          create(RetireStandardChangeTemplateResponseSchema, after.template ? { template: after.template } : {}),
      });
    },

    async listStandardChangeTemplates(request) {
      return create(ListStandardChangeTemplatesResponseSchema, {
        templates: await listTemplates(pool, request.includeRetired),
      });
    },
  };
}
