import { READER_ROLES } from "@rdm/auth";
import type { ServiceRegistration } from "@rdm/grpc";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { DEFAULT_BOARD_GROUPS } from "../domain/change-request.js";
import { changeKeys } from "../store/read-model.js";

import { changeApprovalHandlers } from "./change-approvals.js";
import { changeCalendarHandlers } from "./change-calendar.js";
import { changeImplementationHandlers } from "./change-implementation.js";
import { changeQueryHandlers } from "./change-queries.js";
import { changeRequestHandlers } from "./change-requests.js";
import type { ChangeApiDeps } from "./change-rpc.js";
import { standardChangeTemplateHandlers } from "./change-templates.js";

export type { ChangeApiDeps } from "./change-rpc.js";

const REQUESTERS = ["change-manager", "release-manager", "release-coordinator"] as const;
const IMPLEMENTERS = ["change-manager", "deployer"] as const;

/** The change service: its RPCs, composed from one module per group of RPCs. */
export function changeServiceHandlers(options: ChangeApiDeps): ServiceRegistration<(typeof ChangeService)["method"]> {
  const deps = {
    ...options,
    clock: options.clock ?? (() => new Date()),
    boardGroups: options.boardGroups ?? DEFAULT_BOARD_GROUPS,
    keys: changeKeys(options.pool),
  };
  return {
    service: ChangeService,
    roles: {
      registerStandardChangeTemplate: ["change-manager"],
      retireStandardChangeTemplate: ["change-manager"],
      listStandardChangeTemplates: [...READER_ROLES],
      raiseChange: [...REQUESTERS],
      updateChange: [...REQUESTERS],
      submitChange: [...REQUESTERS],
      assessChange: ["change-manager"],
      approveChange: ["approver"],
      rejectChange: ["approver"],
      scheduleChange: ["change-manager"],
      startChangeImplementation: [...IMPLEMENTERS],
      completeChangeImplementation: [...IMPLEMENTERS],
      failChangeImplementation: [...IMPLEMENTERS],
      reviewChange: ["change-manager"],
      closeChange: ["change-manager"],
      // The requester or a change manager: the decider checks which.
      cancelChange: [...REQUESTERS],
      addChangeTask: ["change-manager", "release-coordinator"],
      completeChangeTask: ["change-manager", "release-coordinator", "deployer"],
      declareFreezeWindow: ["change-manager"],
      liftFreezeWindow: ["change-manager"],
      getChangeCalendar: [...READER_ROLES],
      getChange: [...READER_ROLES],
      listChanges: [...READER_ROLES],
    },
    handlers: {
      ...standardChangeTemplateHandlers(deps),
      ...changeRequestHandlers(deps),
      ...changeApprovalHandlers(deps),
      ...changeImplementationHandlers(deps),
      ...changeCalendarHandlers(deps),
      ...changeQueryHandlers(deps),
    },
  };
}
