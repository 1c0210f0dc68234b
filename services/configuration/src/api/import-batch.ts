import { create, toBinary } from "@bufbuild/protobuf";
import {
  answerOf,
  type CommandOrigin,
  isRuleViolation,
  namingTheMissing,
  refuseOversizedEvents,
} from "@rdm/command-handler";
import type { BulkAppendOptions, CommandResult, ExpectedVersion, NewEvent } from "@rdm/eventstore";
import type { CallContext } from "@rdm/grpc";
import type { ConfigurationItem, Relationship } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type CiReference,
  type ImportItem,
  type ImportItemResult,
  ImportItemResultSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type { ConfigurationItemCommand, ConfigurationItemEvent } from "../domain/configuration-item.js";
import * as itemAggregate from "../domain/configuration-item.js";
import { configurationRuleViolation } from "../domain/rule-violation.js";
import { configurationCodec } from "../store/event-codec.js";
import { type ConfigurationApiDeps, newCiId, registrationCommand } from "./configuration-rpc.js";

/** An item of an import that passed validation. */
export interface ImportEntry {
  requestId: string;
  requestHash: string;
  item: ImportItem;
}

/**
 * What a batch reads before deciding: the recorded answers, and the CIs its relationships name
 * as the read model holds them. A CI's row is written in the transaction of its stream's
 * every append, so it is the stream folded up to the row's version: a snapshot to decide on
 * (and to expect that version), instead of each source's whole history.
 */
export interface BatchReads {
  answers: Map<string, CommandResult>;
  items: Map<string, ConfigurationItem>;
  /** Of the request ids references name, those that registered a CI (its stream's first event). */
  registrations: Set<string>;
}

/** A CI's stream as the batch has decided it so far. */
interface StreamState {
  state: itemAggregate.ConfigurationItemState;
  version: number;
}

export interface PlannedAppend {
  streamId: string;
  expectedVersion: ExpectedVersion;
  events: NewEvent[];
  options: BulkAppendOptions;
}

/** What committing a decided batch writes: the appends, the read model, the answers of no-ops. */
export interface BatchPlan {
  /** One per entry: the result, or the refusal (an Error) the caller turns into a status. */
  outcomes: (ImportItemResult | Error)[];
  appends: PlannedAppend[];
  items: ConfigurationItem[];
  relationships: Relationship[];
  noOps: { requestId: string; requestHash: string; response: Uint8Array; streamId: string }[];
}

const RESPONSE = { response: ImportItemResultSchema };

/** The registration request ids the batch's relationships name. */
export function referencedRequestIds(entries: ImportEntry[]): string[] {
  const requestIds = new Set<string>();
  for (const { item } of entries) {
    if (item.item.case !== "addRelationship") continue;
    for (const ref of [item.item.value.source, item.item.value.target]) {
      if (ref?.reference.case === "registrationRequestId") requestIds.add(ref.reference.value);
    }
  }
  return [...requestIds];
}

/** The request ids whose recorded answers a batch reads: its items' own, and those its references name. */
export function answeredIds(entries: ImportEntry[]): string[] {
  return [...new Set([...entries.map((e) => e.requestId), ...referencedRequestIds(entries)])];
}

/** The CI ids a batch's relationships name directly or through a recorded registration: sources and targets to read. */
export function relatedCiIds(entries: ImportEntry[], answers: Map<string, CommandResult>): string[] {
  const ciIds = new Set<string>();
  for (const { item } of entries) {
    if (item.item.case !== "addRelationship") continue;
    for (const ref of [item.item.value.source, item.item.value.target]) {
      const ciId =
        ref?.reference.case === "ciId" ? ref.reference.value : answers.get(ref?.reference.value ?? "")?.streamId;
      if (ciId) ciIds.add(ciId);
    }
  }
  return [...ciIds];
}

/**
 * Decides a batch's items in order, in memory, as the single-item RPCs decide them one by one:
 * a registration opens a new stream, a relationship is decided on its source's state including
 * what earlier items of the batch decided. Each item is one append (its own request id and
 * recorded answer); several may go to one stream, with consecutive expected versions.
 */
export class BatchDecider {
  private readonly states = new Map<string, StreamState>();
  /** Registrations decided in this batch, by request id. */
  private readonly registered = new Map<string, string>();
  /** Answers given in this batch, by request id (the same id twice in a batch). */
  private readonly answered = new Map<string, { requestHash: string; result: ImportItemResult }>();
  readonly plan: BatchPlan = { outcomes: [], appends: [], items: [], relationships: [], noOps: [] };
  private readonly touched = new Set<string>();

  constructor(
    private readonly deps: Pick<ConfigurationApiDeps, "handler">,
    private readonly ctx: CallContext,
    private readonly reads: BatchReads,
  ) {
    for (const [ciId, item] of reads.items) this.states.set(ciId, { state: { item }, version: Number(item.version) });
  }

  /** Decides every entry; the plan then holds what to commit. */
  decideAll(entries: ImportEntry[]): BatchPlan {
    for (const entry of entries) this.plan.outcomes.push(this.decideEntry(entry));
    for (const streamId of this.touched) {
      const item = this.states.get(streamId)?.state.item;
      if (item) this.plan.items.push(item);
    }
    return this.plan;
  }

  private decideEntry(entry: ImportEntry): ImportItemResult | Error {
    try {
      const replayed = this.replay(entry);
      if (replayed) return replayed;
      const result = entry.item.item.case === "registerConfigurationItem" ? this.register(entry) : this.relate(entry);
      this.answered.set(entry.requestId, { requestHash: entry.requestHash, result });
      return result;
    } catch (error) {
      if (isRuleViolation(error)) return error as Error;
      throw error;
    }
  }

  /** The first answer of a retried item (committed before, or earlier in this batch). */
  private replay(entry: ImportEntry): ImportItemResult | undefined {
    const here = this.answered.get(entry.requestId);
    if (here) {
      const recorded = { requestHash: here.requestHash, response: toBinary(ImportItemResultSchema, here.result) };
      return answerOf({ ...recorded, streamId: null, streamVersion: null }, entry.requestId, {
        ...RESPONSE,
        requestHash: entry.requestHash,
      });
    }
    const previous = this.reads.answers.get(entry.requestId) ?? null;
    return answerOf(previous, entry.requestId, { ...RESPONSE, requestHash: entry.requestHash });
  }

  private register(entry: ImportEntry): ImportItemResult {
    const request = entry.item.item.value as Extract<
      ImportItem["item"],
      { case: "registerConfigurationItem" }
    >["value"];
    const ciId = newCiId();
    const stream: StreamState = { state: itemAggregate.initialState(), version: 0 };
    this.states.set(ciId, stream);
    const result = create(ImportItemResultSchema, { requestId: entry.requestId, ciId, created: true });
    this.apply(entry, ciId, stream, result, registrationCommand(ciId, request));
    this.registered.set(entry.requestId, ciId);
    return result;
  }

  private relate(entry: ImportEntry): ImportItemResult {
    const request = entry.item.item.value as Extract<ImportItem["item"], { case: "addRelationship" }>["value"];
    const sourceCiId = this.resolve(request.source);
    const targetCiId = this.resolve(request.target);
    // No CI under the id (none, or a stream of another kind): refused as AddRelationship refuses it.
    const stream = this.states.get(sourceCiId) ?? { state: itemAggregate.initialState(), version: 0 };
    const target = this.states.get(targetCiId)?.state.item;
    const base = { requestId: entry.requestId, ciId: sourceCiId, targetCiId };
    const added = create(ImportItemResultSchema, { ...base, created: true });
    const command = { kind: "addRelationship" as const, type: request.type, targetCiId, target };
    if (this.apply(entry, sourceCiId, stream, added, command).length > 0) return added;
    // Already there: nothing recorded but the answer, as AddRelationship does.
    const result = create(ImportItemResultSchema, { ...base, created: false });
    this.plan.noOps.push({
      requestId: entry.requestId,
      requestHash: entry.requestHash,
      response: toBinary(ImportItemResultSchema, result),
      streamId: sourceCiId,
    });
    return result;
  }

  /** A reference's CI id: given, or the CI its registration request id registered. */
  private resolve(ref: CiReference | undefined): string {
    if (ref?.reference.case === "ciId") return ref.reference.value;
    const requestId = ref?.reference.value ?? "";
    // Only a registration's request id names its CI (not that of a later command on it).
    const recorded = this.reads.registrations.has(requestId) ? this.reads.answers.get(requestId) : undefined;
    const ciId = this.registered.get(requestId) ?? recorded?.streamId;
    if (ciId) return ciId;
    throw configurationRuleViolation(
      "NOT_FOUND",
      "ci.registration_request_exists",
      `no configuration item was registered with request_id ${requestId}`,
      requestId,
    );
  }

  /** Decides a command on a stream's current state; its stamped events become the entry's append. */
  private apply(
    entry: ImportEntry,
    streamId: string,
    stream: StreamState,
    result: ImportItemResult,
    command: ConfigurationItemCommand,
  ): ConfigurationItemEvent[] {
    let decided: ConfigurationItemEvent[];
    try {
      decided = itemAggregate.decide(command, stream.state);
    } catch (error) {
      throw namingTheMissing(error, {}, streamId); // as the command handler names it
    }
    if (decided.length === 0) return decided;
    const origin: CommandOrigin = {
      actor: this.ctx.principal.subject,
      groups: this.ctx.principal.groups,
      requestId: entry.requestId,
      traceparent: this.ctx.traceparent,
    };
    const events = this.deps.handler.stamp(decided, origin, streamId, stream.version);
    const encoded = events.map((event) => configurationCodec.encode(event, this.ctx.traceparent));
    refuseOversizedEvents(encoded, this.deps.handler.maxEventBytes);
    this.plan.appends.push({
      streamId,
      expectedVersion: stream.version === 0 ? "no_stream" : stream.version,
      events: encoded,
      options: {
        requestId: entry.requestId,
        requestHash: entry.requestHash,
        response: toBinary(ImportItemResultSchema, result),
      },
    });
    stream.state = itemAggregate.fold(events, stream.state);
    stream.version += events.length;
    this.states.set(streamId, stream);
    this.touched.add(streamId);
    for (const event of events) {
      if (event.$typeName === "rdm.configuration.v1.RelationshipAdded" && event.relationship)
        this.plan.relationships.push(event.relationship);
    }
    return events;
  }
}
