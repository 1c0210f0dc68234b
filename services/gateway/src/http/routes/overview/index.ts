import { notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { changeStates, findRelease, toRelease } from "../releases/queries.js";
import { releaseParams } from "../releases/schemas.js";
import { deploymentsByEnvironment, linkedChanges, packageVerification } from "./queries.js";
import { overviewSchema } from "./schemas.js";

const OPEN_TASK = new Set(["OPEN", "IN_PROGRESS"]);

/**
 * The release overview: one release with everything the other services' events say about it —
 * its linked changes' live states, its package's DML verification, its deployments per
 * environment with strategy progress, its deadlines and breaches.
 */
export const overviewRoutes: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/releases/:id/overview",
    {
      schema: {
        tags: ["overview"],
        summary: "Release overview: phase, gate, approvals, tasks, changes, package, deployments, deadlines",
        description:
          "Combined from every topic: the release events (phase, gate conditions evaluated with the release " +
          "service's rules, approvals, tasks, deadlines), the change events (each linked change's live state), " +
          "the configuration events (each package artifact's DML status and integrity) and the deployment events " +
          "(each environment's deployments, newest first, with their state, strategy steps and progress).",
        params: releaseParams,
        response: { 200: overviewSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const row = await findRelease(pool, request.params.id);
      if (!row) return notFound(reply, `release ${request.params.id} not found`);
      const now = new Date();
      const release = toRelease(row, await changeStates(pool, [row]), now);
      const ids = (release.linkedChangeRequests ?? []).map((c) => c.changeRequestId);
      const tasks = release.tasks ?? [];
      return {
        ...release,
        linkedChanges: await linkedChanges(pool, ids),
        package: await packageVerification(pool, release.package ?? []),
        environments: await deploymentsByEnvironment(pool, row.release_id),
        deadlines: {
          phaseDueAt: row.phase_due_at,
          overdue: release.overdue ?? false,
          misses: release.deadlineMisses ?? [],
          // Only tasks that can still be done: those of the phase entry an active release is in
          // (a task of a phase left cannot be completed, and its overdue flag is cleared).
          overdueTasks: tasks
            .filter(
              (t) =>
                release.status === "ACTIVE" &&
                t.phase === release.phase &&
                t.phaseEntry === release.phaseEntry &&
                OPEN_TASK.has(t.status) &&
                (t.overdue || (t.dueAt !== null && new Date(t.dueAt) < now)),
            )
            .map((t) => ({ taskId: t.taskId, name: t.name, phase: t.phase, assignee: t.assignee, dueAt: t.dueAt })),
        },
      };
    },
  );
};
