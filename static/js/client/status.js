// An outgoing message's status (sending -> sent -> delivered -> read; or held, failed) and the
// `awaiting` index of the messages whose read receipt has not arrived (../storage.js). Pure: used by
// outbox.js and receipts.js.

const STATUS_RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };

/** The further of two statuses; a status outside the ranking only ever moves on to `sent`. */
export function laterStatus(current, next) {
  if (!(current in STATUS_RANK)) return next === "sent" ? next : current;
  return STATUS_RANK[next] > STATUS_RANK[current] ? next : current;
}

/** An outgoing record with `status`; it stays in the `awaiting` index until it is read. */
export function withStatus(record, status) {
  const updated = { ...record, status };
  if ((status === "sent" || status === "delivered") && typeof record.serverId === "number") {
    updated.awaiting = record.serverId;
  } else {
    delete updated.awaiting;
  }
  return updated;
}
