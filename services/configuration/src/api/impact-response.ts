import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ImpactPathDetail } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import type { Visit } from "../store/impact-index.js";

// Tags (field number << 3 | wire type) of AnalyzeImpactResponse and ImpactedItem fields.
const RESPONSE_ROOT = 0x0a; // 1, length-delimited
const RESPONSE_IMPACTED = 0x12; // 2, length-delimited
const RESPONSE_BUSINESS_SERVICE_ID = 0x1a; // 3, length-delimited
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

/**
 * The AnalyzeImpactResponse of a walk, encoded straight from each CI's cached fragments: the same
 * bytes protobuf-es writes for the message built from it, without building ~10,000 messages. A
 * whole path is its parent's (already written, copied) plus one entry.
 */
export function encodeImpactResponse(root: Uint8Array, levels: Visit[][], detail: ImpactPathDetail): Uint8Array {
  let total = 1 + varintSize(root.length) + root.length;
  for (const level of levels) {
    for (const visit of level) {
      size(visit, detail);
      total += 1 + varintSize(visit.itemSize) + visit.itemSize;
      if (visit.node.summary.type === CiType.BUSINESS_SERVICE) total += 1 + visit.node.id.length;
    }
  }
  const buffer = new Uint8Array(total);
  buffer[0] = RESPONSE_ROOT;
  let pos = writeVarint(buffer, 1, root.length);
  buffer.set(root, pos);
  pos += root.length;
  for (const level of levels) for (const visit of level) pos = writeItem(buffer, pos, visit, detail);
  for (const level of levels) {
    for (const { node } of level) {
      if (node.summary.type !== CiType.BUSINESS_SERVICE) continue;
      buffer[pos++] = RESPONSE_BUSINESS_SERVICE_ID;
      buffer.set(node.id, pos);
      pos += node.id.length;
    }
  }
  return buffer;
}

/** Sets the visit's sizes from its parent's (sized before it: a walk's levels come in order). */
function size(visit: Visit, detail: ImpactPathDetail): void {
  const parent = visit.parent as Visit;
  // The analysed CI's path is itself.
  if (!parent.parent) parent.pathSize = 1 + parent.node.id.length;
  visit.pathSize = parent.pathSize + 1 + visit.node.id.length;
  visit.typesSize = parent.typesSize + varintSize(visit.type);
  const tail =
    detail === ImpactPathDetail.PARENT
      ? 1 + parent.node.id.length + 1 + varintSize(visit.type)
      : visit.pathSize + 1 + varintSize(visit.typesSize) + visit.typesSize;
  visit.itemSize = visit.node.head.length + 1 + varintSize(visit.depth) + tail;
}

function writeItem(buffer: Uint8Array, at: number, visit: Visit, detail: ImpactPathDetail): number {
  const parent = visit.parent as Visit;
  buffer[at] = RESPONSE_IMPACTED;
  let pos = writeVarint(buffer, at + 1, visit.itemSize);
  buffer.set(visit.node.head, pos);
  pos += visit.node.head.length;
  buffer[pos++] = ITEM_DEPTH;
  pos = writeVarint(buffer, pos, visit.depth);
  if (detail === ImpactPathDetail.PARENT) {
    buffer[pos++] = ITEM_PARENT_CI_ID;
    buffer.set(parent.node.id, pos);
    pos += parent.node.id.length;
    buffer[pos++] = ITEM_PARENT_RELATIONSHIP;
    return writeVarint(buffer, pos, visit.type);
  }
  visit.pathAt = pos;
  if (parent.pathAt < 0) {
    buffer[pos++] = ITEM_PATH;
    buffer.set(parent.node.id, pos);
    pos += parent.node.id.length;
  } else {
    buffer.copyWithin(pos, parent.pathAt, parent.pathAt + parent.pathSize);
    pos += parent.pathSize;
  }
  buffer[pos++] = ITEM_PATH;
  buffer.set(visit.node.id, pos);
  pos += visit.node.id.length;
  buffer[pos++] = ITEM_PATH_RELATIONSHIPS;
  pos = writeVarint(buffer, pos, visit.typesSize);
  visit.typesAt = pos;
  if (parent.typesSize > 0) buffer.copyWithin(pos, parent.typesAt, parent.typesAt + parent.typesSize);
  return writeVarint(buffer, pos + parent.typesSize, visit.type);
}
