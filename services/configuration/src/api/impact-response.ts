import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ImpactPathDetail } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { configurationRuleViolation } from "../domain/rule-violation.js";
import type { CiNode, Walk } from "../store/impact-index.js";

/**
 * The most bytes an answer may have: what a gRPC client receives by default (4 MiB). Whole paths
 * grow with the square of a chain's length (a chain of about 470 CIs reaches it); parent
 * pointers grow with the number of items.
 */
export const MAX_IMPACT_ANSWER_BYTES = 4 * 1024 * 1024;

// Tags (field number << 3 | wire type) of AnalyzeImpactResponse and ImpactedItem fields.
const RESPONSE_ROOT = 0x0a; // 1, length-delimited
const RESPONSE_IMPACTED = 0x12; // 2, length-delimited
const RESPONSE_BUSINESS_SERVICE_ID = 0x1a; // 3, length-delimited
const RESPONSE_AS_OF = 0x22; // 4, length-delimited
const ITEM_DEPTH = 0x28; // 5, varint
const ITEM_PATH = 0x32; // 6, length-delimited
const ITEM_PATH_RELATIONSHIPS = 0x3a; // 7, packed
const ITEM_PARENT_CI_ID = 0x42; // 8, length-delimited
const ITEM_PARENT_RELATIONSHIP = 0x48; // 9, varint

const varintSize = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

function writeVarint(buffer: Uint8Array, at: number, n: number): number {
  let pos = at;
  let value = n;
  while (value >= 0x80) {
    buffer[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buffer[pos++] = value;
  return pos;
}

/** Per item of the walk being encoded: where its path and relationship types went, and sizes. */
const scratch = {
  pathSize: new Int32Array(0),
  typesSize: new Int32Array(0),
  pathAt: new Int32Array(0),
  typesAt: new Int32Array(0),
  itemSize: new Int32Array(0),
};

/** The scratch arrays, grown to `items` (encoding is synchronous, so one set serves every call). */
function scratchFor(items: number): typeof scratch {
  if (scratch.pathSize.length < items) {
    const room = Math.max(items * 2, 1024);
    for (const key of Object.keys(scratch) as (keyof typeof scratch)[]) scratch[key] = new Int32Array(room);
  }
  return scratch;
}

/**
 * The AnalyzeImpactResponse of a walk, encoded straight from each CI's cached fragments: the same
 * bytes protobuf-es writes for the message built from it, without building ~10,000 messages. A
 * whole path is its parent's (already written, copied) plus one entry. `asOf` is the encoded
 * Timestamp of as_of.
 */
export function encodeImpactResponse(
  root: Uint8Array,
  walk: Walk,
  detail: ImpactPathDetail,
  asOf: Uint8Array,
): Uint8Array {
  const { count, nodes, node } = walk;
  const s = scratchFor(count + 1);
  let total = 1 + varintSize(root.length) + root.length + 1 + varintSize(asOf.length) + asOf.length;
  if (count > 0) {
    // The analysed CI's path is itself, written by its children as their path's first entry.
    s.pathSize[0] = 1 + (nodes[node[0] as number] as CiNode).id.length;
    s.typesSize[0] = 0;
    s.pathAt[0] = -1;
  }
  for (let item = 1; item <= count; item++) {
    const size = sizeItem(walk, item, detail, s);
    total += 1 + varintSize(size) + size;
    const { summary, id } = nodes[node[item] as number] as CiNode;
    if (summary.type === CiType.BUSINESS_SERVICE) total += 1 + id.length;
  }
  refuseOversized(total, walk, detail);
  const buffer = new Uint8Array(total);
  buffer[0] = RESPONSE_ROOT;
  let pos = writeVarint(buffer, 1, root.length);
  buffer.set(root, pos);
  pos += root.length;
  for (let item = 1; item <= count; item++) pos = writeItem(buffer, pos, walk, item, detail, s);
  for (let item = 1; item <= count; item++) {
    const { summary, id } = nodes[node[item] as number] as CiNode;
    if (summary.type !== CiType.BUSINESS_SERVICE) continue;
    buffer[pos++] = RESPONSE_BUSINESS_SERVICE_ID;
    buffer.set(id, pos);
    pos += id.length;
  }
  buffer[pos] = RESPONSE_AS_OF;
  buffer.set(asOf, writeVarint(buffer, pos + 1, asOf.length));
  return buffer;
}

/** A clear refusal instead of an answer the client would drop as too large (RESOURCE_EXHAUSTED). */
function refuseOversized(bytes: number, walk: Walk, detail: ImpactPathDetail): void {
  if (bytes <= MAX_IMPACT_ANSWER_BYTES) return;
  const root = (walk.nodes[walk.node[0] as number] as CiNode).ciId;
  const remedy =
    detail === ImpactPathDetail.PARENT
      ? "ask for fewer levels (max_depth) or fewer relationship types"
      : "ask with path_detail IMPACT_PATH_DETAIL_PARENT (every path can be rebuilt from parent pointers) or for fewer levels (max_depth)";
  throw configurationRuleViolation(
    "FAILED_PRECONDITION",
    "impact.answer_too_large",
    `the answer would be ${bytes} bytes (${walk.count} impacted items), more than the ${MAX_IMPACT_ANSWER_BYTES} a gRPC client receives by default: ${remedy}`,
    root,
  );
}

/** Sizes an item from its parent's (sized before it: a walk's items come level by level). */
function sizeItem(walk: Walk, item: number, detail: ImpactPathDetail, s: typeof scratch): number {
  const parent = walk.parent[item] as number;
  const type = walk.type[item] as number;
  const { id, head } = walk.nodes[walk.node[item] as number] as CiNode;
  const pathSize = (s.pathSize[parent] as number) + 1 + id.length;
  const typesSize = (s.typesSize[parent] as number) + varintSize(type);
  s.pathSize[item] = pathSize;
  s.typesSize[item] = typesSize;
  const tail =
    detail === ImpactPathDetail.PARENT
      ? 1 + (walk.nodes[walk.node[parent] as number] as CiNode).id.length + 1 + varintSize(type)
      : pathSize + 1 + varintSize(typesSize) + typesSize;
  const size = head.length + 1 + varintSize(walk.depth[item] as number) + tail;
  s.itemSize[item] = size;
  return size;
}

function writeItem(
  buffer: Uint8Array,
  at: number,
  walk: Walk,
  item: number,
  detail: ImpactPathDetail,
  s: typeof scratch,
): number {
  const parent = walk.parent[item] as number;
  const type = walk.type[item] as number;
  const { id, head } = walk.nodes[walk.node[item] as number] as CiNode;
  const parentId = (walk.nodes[walk.node[parent] as number] as CiNode).id;
  buffer[at] = RESPONSE_IMPACTED;
  let pos = writeVarint(buffer, at + 1, s.itemSize[item] as number);
  buffer.set(head, pos);
  pos += head.length;
  buffer[pos++] = ITEM_DEPTH;
  pos = writeVarint(buffer, pos, walk.depth[item] as number);
  if (detail === ImpactPathDetail.PARENT) {
    buffer[pos++] = ITEM_PARENT_CI_ID;
    buffer.set(parentId, pos);
    pos += parentId.length;
    buffer[pos++] = ITEM_PARENT_RELATIONSHIP;
    return writeVarint(buffer, pos, type);
  }
  s.pathAt[item] = pos;
  const parentPathAt = s.pathAt[parent] as number;
  const parentPathSize = s.pathSize[parent] as number;
  if (parentPathAt < 0) {
    buffer[pos++] = ITEM_PATH;
    buffer.set(parentId, pos);
    pos += parentId.length;
  } else {
    buffer.copyWithin(pos, parentPathAt, parentPathAt + parentPathSize);
    pos += parentPathSize;
  }
  buffer[pos++] = ITEM_PATH;
  buffer.set(id, pos);
  pos += id.length;
  buffer[pos++] = ITEM_PATH_RELATIONSHIPS;
  const typesSize = s.typesSize[item] as number;
  pos = writeVarint(buffer, pos, typesSize);
  s.typesAt[item] = pos;
  const parentTypesSize = s.typesSize[parent] as number;
  const parentTypesAt = s.typesAt[parent] as number;
  if (parentTypesSize > 0) buffer.copyWithin(pos, parentTypesAt, parentTypesAt + parentTypesSize);
  return writeVarint(buffer, pos + parentTypesSize, type);
}
