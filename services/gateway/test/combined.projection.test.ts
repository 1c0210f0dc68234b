// The combined views' projections (deployment plans, audit trail) as projection specs: the
// encoded events a topic carries applied by every projection of the topic, as the consumer does,
// against real PostgreSQL.
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { CloudEvent } from "@rdm/messaging";
import { CHANGE_EVENTS_TOPIC, DEPLOYMENT_EVENTS_TOPIC, RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import {
  ChangeImplementationStartedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestSubmittedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeploymentCancelledSchema,
  DeploymentPausedSchema,
  DeploymentPlannedSchema,
  DeploymentPromotedSchema,
  DeploymentResumedSchema,
  DeploymentRollbackAbandonedSchema,
  DeploymentRollbackStartedSchema,
  DeploymentScheduledSchema,
  DeploymentStepClaimedSchema,
  DeploymentStepCompletedSchema,
  DeploymentStepFailedSchema,
  DeploymentStrategyKind,
  StepKind,
  StepState,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { SubscriptionCreatedSchema } from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import { PublishedStreams, projectionSpec } from "@rdm/testkit";
import type pg from "pg";
import { deploymentPlanProjection } from "../src/projections/deployment-plans/projection.js";
import { projections } from "../src/projections/index.js";
import { projectionHandler } from "../src/projections/projection.js";

const handle = projectionHandler(projections, "");
/** Every projection's migrations but those `skip` names (an older gateway's tables). */
async function migrate(client: pg.PoolClient, skip = (_projection: string, _version: number) => false) {
  const applied = new Set<string>();
  for (const p of projections)
    for (const m of p.migrations) {
      // The audit trail is one table behind four projections (one per topic).
      if (applied.has(`${p.name}/${m.version}`) || skip(p.name, m.version)) continue;
      applied.add(`${p.name}/${m.version}`);
      await client.query(m.sql);
    }
}

const spec = projectionSpec<{ topic: string; envelope: CloudEvent }>({
  setup: (client) => migrate(client),
  apply: ({ topic, envelope }, tx) => handle(envelope, tx, { topic }),
});

/**
 * A builder of one stream's events on `topic`, as its service publishes them: each the stream's
 * next version, a minute after the one before (from 2026-12-02 08:00).
 */
function streamOn(topic: string, streamId: string, actor: string, correlationId = "") {
  let version = 0;
  return <D extends DescMessage>(schema: D, fields: Omit<MessageInitShape<D>, "metadata">) => {
    const id = randomUUID();
    const metadata = create(EventMetadataSchema, {
      eventId: id,
      actor,
      streamId,
      streamVersion: BigInt(++version),
      occurredAt: timestampFromDate(new Date(Date.UTC(2026, 11, 2, 8, version))),
      correlationId,
    });
    const message = create(schema, { ...fields, metadata } as unknown as MessageInitShape<D>);
    const envelope = { id, type: schema.typeName, source: "test", subject: streamId, time: new Date() };
    return { topic, envelope: { ...envelope, data: toBinary(schema, message) } };
  };
}

const deploymentId = randomUUID();
const releaseId = randomUUID();
const deploymentEvent = streamOn(DEPLOYMENT_EVENTS_TOPIC, deploymentId, "executor-1", "corr-1");

const planned = deploymentEvent(DeploymentPlannedSchema, {
  deploymentId,
  releaseId,
  environment: "production",
  strategy: { kind: DeploymentStrategyKind.ROLLING },
  window: {
    start: timestampFromDate(new Date("2026-12-02T09:00:00Z")),
    end: timestampFromDate(new Date("2026-12-02T10:00:00Z")),
  },
  steps: [0, 1].map((index) => ({
    index,
    kind: StepKind.DEPLOY,
    label: `batch ${index + 1}`,
    state: StepState.PENDING,
  })),
  requiredApprovals: 1,
});
const scheduled = deploymentEvent(DeploymentScheduledSchema, { deploymentId });
const claimed = deploymentEvent(DeploymentStepClaimedSchema, { deploymentId, stepIndex: 0, executorId: "e-1" });
const completed = deploymentEvent(DeploymentStepCompletedSchema, { deploymentId, stepIndex: 0 });
const cancelled = deploymentEvent(DeploymentCancelledSchema, { deploymentId, reason: "superseded" });
const claimedSecond = deploymentEvent(DeploymentStepClaimedSchema, { deploymentId, stepIndex: 1, executorId: "e-1" });
const rollingBack = deploymentEvent(DeploymentRollbackStartedSchema, {
  deploymentId,
  reason: "verification failed",
  automatic: true,
  steps: [{ index: 2, kind: StepKind.ROLLBACK, label: "roll back", state: StepState.PENDING }],
});

const planQuery = `SELECT status, window_start, version::int AS version,
  (SELECT jsonb_agg(s->>'state' ORDER BY (s->>'index')::int) FROM jsonb_array_elements(plan->'steps') s) AS steps
  FROM deployment_plan_view`;

test("a plan's steps follow the executors' claims and completions", async () => {
  await spec
    .given([planned, scheduled, claimed])
    .when(completed)
    .then(planQuery, [
      {
        status: "IN_PROGRESS",
        window_start: new Date("2026-12-02T09:00:00Z"),
        version: 4,
        steps: ["COMPLETED", "READY"],
      },
    ]);
});

test("a plan keeps the changes its start checked, which the calendar counts as implemented by it", async () => {
  const changeRequestId = "5d0c3c56-8a3c-4d59-9d3e-0b6f3d1f7a10";
  await spec
    .given([planned])
    .when(deploymentEvent(DeploymentScheduledSchema, { deploymentId, changeRequestIds: [changeRequestId] }))
    .then("SELECT status, plan->'changeRequestIds' AS changes FROM deployment_plan_view", [
      { status: "SCHEDULED", changes: [changeRequestId] },
    ]);
});

test("a cancellation skips the steps that had not run; a replayed event changes nothing", async () => {
  await spec
    .given([planned, scheduled, claimed, completed, cancelled])
    .when(claimed, scheduled)
    .then(planQuery, [
      {
        status: "CANCELLED",
        window_start: new Date("2026-12-02T09:00:00Z"),
        version: 5,
        steps: ["COMPLETED", "SKIPPED"],
      },
    ]);
});

test("a rollback skips the claimed step too and queues its first step, as the deployment service does", async () => {
  await spec
    .given([planned, scheduled, claimed, completed, claimedSecond])
    .when(rollingBack)
    .then(planQuery, [
      {
        status: "ROLLING_BACK",
        window_start: new Date("2026-12-02T09:00:00Z"),
        version: 7,
        steps: ["COMPLETED", "SKIPPED", "READY"],
      },
    ]);
});

/** Events of a deployment of their own (stream versions counted from 1), each test a new one. */
function otherDeployment() {
  const streams = new PublishedStreams("executor-1");
  const id = randomUUID();
  const event = <D extends DescMessage>(schema: D, fields: Omit<MessageInitShape<D>, "metadata" | "$typeName">) => ({
    topic: DEPLOYMENT_EVENTS_TOPIC,
    envelope: streams.event("rdm/deployment", schema, id, { ...fields, deploymentId: id } as typeof fields),
  });
  const step = (index: number, promotionAfter = false, kind = StepKind.DEPLOY) => ({
    index,
    kind,
    label: `stage ${index + 1}`,
    state: StepState.PENDING,
    promotionAfter,
  });
  return { event, step, id };
}

const stepsQuery = `SELECT status, plan->>'awaitingPromotion' AS awaiting, plan->>'paused' AS paused,
  (SELECT jsonb_agg(s->>'state' ORDER BY (s->>'index')::int) FROM jsonb_array_elements(plan->'steps') s) AS steps
  FROM deployment_plan_view`;

test("a pause marks the plan paused and keeps its status, as the deployment service does; a resume clears it", async () => {
  for (const claimedFirst of [false, true]) {
    const { event, step } = otherDeployment();
    const history = [
      event(DeploymentPlannedSchema, { releaseId, environment: "staging", steps: [step(0), step(1)] }),
      event(DeploymentScheduledSchema, {}),
      ...(claimedFirst ? [event(DeploymentStepClaimedSchema, { stepIndex: 0, executorId: "e-1" })] : []),
    ];
    const status = claimedFirst ? "IN_PROGRESS" : "SCHEDULED";
    const steps = claimedFirst ? ["CLAIMED", "PENDING"] : ["READY", "PENDING"];
    await spec
      .given(history)
      .when(event(DeploymentPausedSchema, { reason: "hold on" }))
      .then(stepsQuery, [{ status, awaiting: null, paused: "true", steps }]);
    await spec
      .given([...history, event(DeploymentPausedSchema, { reason: "hold on" })])
      .when(event(DeploymentResumedSchema, {}))
      .then(stepsQuery, [{ status, awaiting: null, paused: "false", steps }]);
    // The pause's reason goes with it.
    await spec
      .given([...history, event(DeploymentPausedSchema, { reason: "hold on" })])
      .when(event(DeploymentResumedSchema, {}))
      .then("SELECT plan->>'reason' AS reason FROM deployment_plan_view", [{ reason: "" }]);
  }
});

test("VERIFYING while a verification step runs, IN_PROGRESS again for the switch after it", async () => {
  const { event, step } = otherDeployment();
  const history = [
    event(DeploymentPlannedSchema, {
      releaseId,
      environment: "staging",
      steps: [step(0), step(1, false, StepKind.VERIFY), step(2, false, StepKind.SWITCH)],
    }),
    event(DeploymentScheduledSchema, {}),
    event(DeploymentStepClaimedSchema, { stepIndex: 0, executorId: "e-1" }),
    event(DeploymentStepCompletedSchema, { stepIndex: 0 }),
  ];
  const verifying = event(DeploymentStepClaimedSchema, { stepIndex: 1, executorId: "e-1" });
  await spec
    .given(history)
    .when(verifying)
    .then(stepsQuery, [
      { status: "VERIFYING", awaiting: null, paused: null, steps: ["COMPLETED", "CLAIMED", "PENDING"] },
    ]);
  await spec
    .given([...history, verifying, event(DeploymentStepCompletedSchema, { stepIndex: 1 })])
    .when(event(DeploymentStepClaimedSchema, { stepIndex: 2, executorId: "e-1" }))
    .then(stepsQuery, [
      { status: "IN_PROGRESS", awaiting: null, paused: null, steps: ["COMPLETED", "COMPLETED", "CLAIMED"] },
    ]);
});

test("a stage that waits for a promotion queues its next step only once promoted", async () => {
  const { event, step } = otherDeployment();
  const history = [
    event(DeploymentPlannedSchema, { releaseId, environment: "staging", steps: [step(0, true), step(1)] }),
    event(DeploymentScheduledSchema, {}),
    event(DeploymentStepClaimedSchema, { stepIndex: 0, executorId: "e-1" }),
    event(DeploymentStepCompletedSchema, { stepIndex: 0 }),
  ];
  await spec
    .given(history.slice(0, -1))
    .when(history.at(-1) as (typeof history)[number])
    .then(stepsQuery, [{ status: "IN_PROGRESS", awaiting: "true", paused: null, steps: ["COMPLETED", "PENDING"] }]);
  await spec
    .given(history)
    .when(event(DeploymentPromotedSchema, { comment: "canary healthy" }))
    .then(stepsQuery, [{ status: "IN_PROGRESS", awaiting: "false", paused: null, steps: ["COMPLETED", "READY"] }]);
});

test("an older gateway's plans upgraded: PAUSED is the status it was paused in beside the flag, outcomes get a plan", async () => {
  const [running, verifying, ended, outcomeOnly] = ["running", "verifying", "ended", "outcome-only"];
  const waiting = otherDeployment();
  const legacy = (id: string, status: string, steps: [string, string][], extra: Record<string, unknown> = {}) => {
    const plan = {
      deploymentId: id,
      releaseId,
      environment: "staging",
      status,
      steps: steps.map(([kind, state], index) => ({ index, kind, label: "", targetCiIds: [], state })),
      plannedAt: "2026-12-02T08:00:00.000Z",
      ...extra,
    };
    return [id, releaseId, "staging", status, JSON.stringify(plan)];
  };
  const upgraded = projectionSpec<{ topic: string; envelope: CloudEvent }>({
    async setup(client) {
      await migrate(client, (projection, version) => projection === deploymentPlanProjection.name && version > 1);
      for (const row of [
        legacy(
          running,
          "PAUSED",
          [
            ["DEPLOY", "CLAIMED"],
            ["VERIFY", "PENDING"],
          ],
          { started: true },
        ),
        legacy(verifying, "PAUSED", [
          ["DEPLOY", "COMPLETED"],
          ["VERIFY", "CLAIMED"],
        ]),
        legacy(waiting.id, "PAUSED", [
          ["DEPLOY", "READY"],
          ["VERIFY", "PENDING"],
        ]),
        legacy(
          ended,
          "SUCCEEDED",
          [
            ["DEPLOY", "COMPLETED"],
            ["VERIFY", "COMPLETED"],
          ],
          { paused: true },
        ),
      ])
        await client.query(
          `INSERT INTO deployment_plan_view (deployment_id, release_id, environment, status, plan, version, updated_at)
           VALUES ($1, $2, $3, $4, $5, 0, '2026-12-02T08:30:00Z')`,
          row,
        );
      await client.query(
        `INSERT INTO deployment_view (deployment_id, release_id, environment, state, state_sequence, strategy, artifacts,
           failure_reason, first_event_at, updated_at)
         VALUES ($1, $2, 'staging', 'FAILED', 3, 'ROLLING', '[]', 'smoke test failed', '2026-12-01T07:00:00Z',
           '2026-12-01T07:20:00Z')`,
        [outcomeOnly, releaseId],
      );
      for (const m of deploymentPlanProjection.migrations.slice(1)) await client.query(m.sql);
    },
    apply: ({ topic, envelope }, tx) => handle(envelope, tx, { topic }),
  });
  const planned = new Date("2026-12-02T08:00:00Z");
  await upgraded
    .given([])
    .when(waiting.event(DeploymentResumedSchema, {}))
    .then(
      `SELECT deployment_id AS id, status, plan->>'status' AS plan_status, plan->>'paused' AS paused,
         plan ? 'started' AS started, plan->>'reason' AS reason, first_event_at
       FROM deployment_plan_view ORDER BY first_event_at, deployment_id`,
      [
        {
          id: outcomeOnly,
          status: "FAILED",
          plan_status: "FAILED",
          paused: null,
          started: false,
          reason: "smoke test failed",
          first_event_at: new Date("2026-12-01T07:00:00Z"),
        },
        ...[
          { id: ended, status: "SUCCEEDED", paused: "false" },
          { id: running, status: "IN_PROGRESS", paused: "true" },
          { id: verifying, status: "VERIFYING", paused: "true" },
          // Resumed: a pause's reason, if it had one, is gone.
          { id: waiting.id, status: "SCHEDULED", paused: "false", reason: "" },
        ]
          .sort((x, y) => x.id.localeCompare(y.id))
          .map(({ id, status, paused, reason = null }) => ({
            id,
            status,
            plan_status: status,
            paused,
            started: false,
            reason,
            first_event_at: planned,
          })),
      ],
    );
});

test("a failed rollback step is queued again, as the deployment service does, until the rollback is given up", async () => {
  const { event, step } = otherDeployment();
  const history = [
    event(DeploymentPlannedSchema, { releaseId, environment: "staging", steps: [step(0)] }),
    event(DeploymentScheduledSchema, {}),
    event(DeploymentStepClaimedSchema, { stepIndex: 0, executorId: "e-1" }),
    event(DeploymentRollbackStartedSchema, {
      reason: "by hand",
      steps: [{ index: 1, kind: StepKind.ROLLBACK, label: "restore", state: StepState.PENDING, rollback: true }],
    }),
    event(DeploymentStepClaimedSchema, { stepIndex: 1, executorId: "e-1" }),
  ];
  const retryAt = timestampFromDate(new Date("2026-12-02T08:10:00Z"));
  await spec
    .given(history)
    .when(event(DeploymentStepFailedSchema, { stepIndex: 1, reason: "unreachable", retryAt }))
    .then(stepsQuery, [{ status: "ROLLING_BACK", awaiting: "false", paused: "false", steps: ["SKIPPED", "READY"] }]);
  // Given up: FAILED again, the restore skipped, the rollback naming the targets it left.
  const failedRestore = event(DeploymentStepFailedSchema, { stepIndex: 1, reason: "unreachable", retryAt });
  await spec
    .given([...history, failedRestore])
    .when(event(DeploymentRollbackAbandonedSchema, { reason: "host gone", unrestoredTargetCiIds: ["ci-1"] }))
    .then(
      `SELECT status, plan->'rollback'->'abandoned' AS abandoned, plan->>'reason' AS reason,
             (SELECT jsonb_agg(s->>'state' ORDER BY (s->>'index')::int) FROM jsonb_array_elements(plan->'steps') s) AS steps
           FROM deployment_plan_view`,
      [
        {
          status: "FAILED",
          abandoned: { reason: "host gone", unrestoredTargetCiIds: ["ci-1"] },
          reason: "host gone",
          steps: ["SKIPPED", "SKIPPED"],
        },
      ],
    );
});

test("the audit trail records each event once, with the release and environment its plan names", async () => {
  await spec
    .given([planned, scheduled])
    .when(claimed, claimed)
    .then(
      `SELECT event_type, actor, release_id, deployment_id, environments, correlation_id, views FROM audit_event
       ORDER BY seq`,
      [planned, scheduled, claimed].map((e) => ({
        event_type: e.envelope.type,
        actor: "executor-1",
        release_id: releaseId,
        deployment_id: deploymentId,
        environments: ["production"],
        correlation_id: "corr-1",
        views: ["overview", "calendar", "inventory", "kpis", "audit"],
      })),
    );
});

test("a change's implementation events are in the audit trail under the deployment's environment and the change's", async () => {
  const changeRequestId = randomUUID();
  const changeEvent = streamOn(CHANGE_EVENTS_TOPIC, changeRequestId, "carl");
  const raised = changeEvent(ChangeRequestRaisedSchema, {
    changeRequestId,
    key: "CHG-2026-0001",
    title: "payments",
    environments: ["production", "staging"],
  });
  const submitted = changeEvent(ChangeRequestSubmittedSchema, { changeRequestId });
  const implementing = changeEvent(ChangeImplementationStartedSchema, {
    changeRequestId,
    deploymentId,
    environment: "test",
  });
  await spec
    .given([raised, submitted])
    .when(implementing)
    .then("SELECT event_type, environments FROM audit_event ORDER BY seq", [
      { event_type: raised.envelope.type, environments: ["production", "staging"] },
      { event_type: submitted.envelope.type, environments: ["production", "staging"] },
      { event_type: implementing.envelope.type, environments: ["test", "production", "staging"] },
    ]);
});

test("a notification subscription's events on the release topic are in the audit trail, changing no other view", async () => {
  const subscriptionId = randomUUID();
  const subscriptionEvent = streamOn(RELEASE_EVENTS_TOPIC, `subscription-${subscriptionId}`, "rita");
  const created = subscriptionEvent(SubscriptionCreatedSchema, { subscriptionId, name: "ops", owner: "rita" });
  await spec
    .given([])
    .when(created)
    .then("SELECT source, event_type, actor, views FROM audit_event", [
      { source: "release", event_type: SubscriptionCreatedSchema.typeName, actor: "rita", views: ["audit"] },
    ]);
});
