// (pure) A group as a conversation (docs/PROTOCOL.md part III): its key is "group:<id>", so a
// group's messages have `contact` set to that key and every conversation index, window and counter
// serves contacts and groups alike. An email cannot be such a key (it has no "@" before the colon).
// ../state.js exports these for the UI.

export const GROUP_PREFIX = "group:";

/** The conversation key of group `id` (the server's lower-case UUID). */
export function groupKey(id) {
  return `${GROUP_PREFIX}${id}`;
}

export function isGroupKey(key) {
  return typeof key === "string" && key.startsWith(GROUP_PREFIX);
}

/** The group id of a group key. */
export function groupIdOf(key) {
  return key.slice(GROUP_PREFIX.length);
}
