// An outgoing message's status (sending -> sent -> delivered -> read; or held, failed), the
// `awaiting` index of the messages whose read receipt has not arrived (../storage.js; for a group
// message `groupAwaiting`, asked about with `group_receipts`), its client_id, and whether a failure
// leaves it queued. Pure: used by outbox.js, groups.js and receipts.js.
import { ApiError } from "../api.js";
import { isGroupKey } from "./groupkey.js";

/** A new client_id (a UUID, docs/PROTOCOL.md section 17.1). */
export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A failure that leaves the message queued (network, server trouble): it goes on the next try. */
export function retriable(error) {
  return error instanceof ApiError && (error.status === 0 || error.status >= 500);
}

const STATUS_RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };

/** The further of two statuses; a status outside the ranking only ever moves on to `sent`. */
export function laterStatus(current, next) {
  if (!(current in STATUS_RANK)) return next === "sent" ? next : current;
  return STATUS_RANK[next] > STATUS_RANK[current] ? next : current;
}

/**
 * An outgoing record with `status`; it stays in the `awaiting` index (a group message's in
 * `groupAwaiting`) until it is read. A group's notice line (our settings message) awaits nothing.
 */
export function withStatus(record, status) {
  const updated = { ...record, status };
  const index = isGroupKey(record.contact) ? "groupAwaiting" : "awaiting";
  if ((status === "sent" || status === "delivered") && typeof record.serverId === "number" && !record.notice) {
    updated[index] = record.serverId;
  } else {
    delete updated[index];
  }
  return updated;
}
