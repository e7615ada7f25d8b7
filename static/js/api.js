// The only place that calls fetch().
//
// - Unsafe requests echo the `csrftoken` cookie in X-CSRFToken (the auth cookies are HttpOnly and
//   SameSite=Strict; the server runs Django's CSRF check on every unsafe method).
// - A 401 on an API call refreshes the session once and retries the request once. Refreshes are
//   serialised across tabs with a Web Lock: two tabs must never present the same refresh token, or
//   the second presentation looks like token reuse and the server revokes every session of the
//   account. A tab that waited for the lock skips its own refresh when another tab refreshed after
//   its request failed (the new cookies are shared).
// - A 401 `device_removed` means this browser was unlinked from the account (docs/PROTOCOL.md
//   section 19): no refresh can help, so the device-removed hook runs instead (main.js erases this
//   device's keys and shows the sign-in page).
// - Every failure becomes an ApiError {status, code, detail, errors, retryAfter} with a message fit
//   for the user.
import { withLock } from "./locks.js";

const REFRESH_LOCK = "sm-auth-refresh";
const REFRESHED_AT = "sm-auth-refreshed-at";

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

const FIELD_NAMES = {
  email: "Email",
  password: "Password",
  non_field_errors: "",
  identity_key: "Identity key",
  signed_prekey: "Signed prekey",
  one_time_prekeys: "One-time prekeys",
  name: "Name",
  device_name: "Device name",
};

function flattenErrors(errors, prefix = "") {
  const lines = [];
  if (Array.isArray(errors)) {
    for (const item of errors) {
      if (typeof item === "string") lines.push(prefix ? `${prefix}: ${item}` : item);
      else lines.push(...flattenErrors(item, prefix));
    }
  } else if (errors && typeof errors === "object") {
    for (const [field, value] of Object.entries(errors)) {
      const name = field in FIELD_NAMES ? FIELD_NAMES[field] : field;
      lines.push(...flattenErrors(value, name));
    }
  }
  return lines;
}

export class ApiError extends Error {
  constructor(status, body, { retryAfter = null } = {}) {
    const detail = (body && typeof body.detail === "string" && body.detail) || defaultDetail(status);
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? "network_error" : "error");
    this.detail = detail;
    this.errors = (body && body.errors) || null;
    this.retryAfter = retryAfter;
  }

  /** A sentence for the user: the server's reason, field errors, and when to retry. */
  get userMessage() {
    const lines = this.errors ? flattenErrors(this.errors) : [];
    let text = lines.length ? lines.join(" ") : this.detail;
    if (this.status === 429 && this.retryAfter) text += ` Try again in ${formatSeconds(this.retryAfter)}.`;
    return text;
  }
}

function defaultDetail(status) {
  if (status === 0) return "Cannot reach the server. Check your connection.";
  if (status === 429) return "Too many attempts.";
  if (status >= 500) return "The server had a problem. Try again in a moment.";
  return `Request failed (${status}).`;
}

function formatSeconds(seconds) {
  const s = Number(seconds);
  if (s < 90) return `${s} seconds`;
  return `${Math.ceil(s / 60)} minutes`;
}

/** Human text for any error a page may catch. */
export function errorMessage(error) {
  if (error instanceof ApiError) return error.userMessage;
  return (error && error.message) || "Something went wrong.";
}

// --- session expiry hook: main.js decides what a dead session means for the page ---------------

let onSessionExpired = () => window.location.assign("/login");
export function setSessionExpiredHandler(handler) {
  onSessionExpired = handler;
}

// The server removed this browser's device (401 `device_removed`); until main.js says otherwise,
// the session is simply over.
let onDeviceRemoved = () => onSessionExpired();
export function setDeviceRemovedHandler(handler) {
  onDeviceRemoved = handler;
}

const isDeviceRemoved = (error) => error instanceof ApiError && error.status === 401 && error.code === "device_removed";

async function rawFetch(method, url, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, null);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    throw new ApiError(response.status, data, { retryAfter: retry ? Number(retry) : null });
  }
  return data;
}

/** Makes sure the CSRF cookie exists (pages set it; this covers a cleared cookie jar). */
async function ensureCsrf() {
  if (!csrfToken()) await rawFetch("GET", "/api/v1/auth/csrf");
}

let refreshInFlight = null;

/**
 * Refreshes the access cookie. `since` is when the failed request started: if another tab
 * refreshed after that, its new cookies are already ours and no refresh is sent.
 * Resolves true on success, false when the session is over.
 */
export function refreshSession(since = Date.now()) {
  if (!refreshInFlight) {
    refreshInFlight = withLock(REFRESH_LOCK, async () => {
      const last = Number(localStorage.getItem(REFRESHED_AT) || 0);
      if (last >= since) return true;
      try {
        await ensureCsrf();
        await rawFetch("POST", "/api/v1/auth/refresh");
      } catch (error) {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return false;
        throw error;
      }
      localStorage.setItem(REFRESHED_AT, String(Date.now()));
      return true;
    }).finally(() => {
      refreshInFlight = null;
    });
  }
  return refreshInFlight;
}

/** An authenticated API call: on 401, refresh once and retry once. */
async function request(method, url, body) {
  if (method !== "GET") await ensureCsrf();
  const started = Date.now();
  try {
    return await rawFetch(method, url, body);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    if (isDeviceRemoved(error)) {
      onDeviceRemoved();
      throw error;
    }
    const refreshed = await refreshSession(started);
    if (!refreshed) {
      onSessionExpired();
      throw error;
    }
    try {
      return await rawFetch(method, url, body);
    } catch (retryError) {
      if (isDeviceRemoved(retryError)) onDeviceRemoved();
      else if (retryError instanceof ApiError && retryError.status === 401) onSessionExpired();
      throw retryError;
    }
  }
}

/** An auth endpoint: no refresh dance (there is no session yet, or it is being ended). */
async function authRequest(method, url, body) {
  await ensureCsrf();
  return rawFetch(method, url, body);
}

const enc = encodeURIComponent;

export const auth = {
  me: () => request("GET", "/api/v1/auth/me"),
  // `deviceId`: this browser's number for the account, or null (docs/PROTOCOL.md section 15).
  login: (email, password, deviceId) => authRequest("POST", "/api/v1/auth/login", { email, password, device_id: deviceId }),
  register: (payload) => authRequest("POST", "/api/v1/auth/register", payload),
  logout: () => authRequest("POST", "/api/v1/auth/logout"),
};

export const contactsApi = {
  list: () => request("GET", "/api/v1/contacts/"),
  requests: () => request("GET", "/api/v1/contacts/requests"),
  request: (email) => request("POST", "/api/v1/contacts/requests", { email }),
  answer: (id, action) => request("PUT", `/api/v1/contacts/requests/${enc(id)}`, { action }),
  // Emails travel in bodies, never in paths: paths are written to access logs.
  remove: (email) => request("POST", "/api/v1/contacts/remove", { email }),
};

export const keysApi = {
  bundles: (email, deviceIds) => request("POST", "/api/v1/keys/bundles", { email, device_ids: deviceIds }),
  devices: (email) => request("POST", "/api/v1/keys/devices", { email }),
  identity: (email) => request("POST", "/api/v1/keys/identity/lookup", { email }),
  prekeyCount: () => request("GET", "/api/v1/keys/prekeys/count"),
  uploadPrekeys: (oneTimePrekeys) => request("POST", "/api/v1/keys/prekeys", { one_time_prekeys: oneTimePrekeys }),
  setSignedPrekey: (signedPrekey) => request("PUT", "/api/v1/keys/signed-prekey", signedPrekey),
  setIdentity: (payload) => request("PUT", "/api/v1/keys/identity", payload),
};

export const devicesApi = {
  list: () => request("GET", "/api/v1/devices"),
  rename: (id, name) => request("PATCH", `/api/v1/devices/${enc(id)}`, { name }),
  unlink: (id) => request("DELETE", `/api/v1/devices/${enc(id)}`),
};

// Linking a device (docs/PROTOCOL.md section 18). The link id travels in bodies, never in a path.
export const linksApi = {
  open: () => request("POST", "/api/v1/devices/links"),
  poll: (linkId) => request("POST", "/api/v1/devices/links/poll", { link_id: linkId }),
  offer: (offer) => request("POST", "/api/v1/devices/links/offer", offer),
  cancel: (linkId) => request("POST", "/api/v1/devices/links/cancel", { link_id: linkId }),
  // The last step: the new device's keys; the answer is auth/me's, bound to the new device.
  complete: (payload) => request("POST", "/api/v1/devices", payload),
};

export const messagesApi = {
  pending: (after = 0) => request("GET", `/api/v1/messages/?after=${enc(after)}`),
  send: (envelope) => request("POST", "/api/v1/messages/", envelope),
  ack: (ids) => request("POST", "/api/v1/messages/ack", { ids }),
  read: (ids) => request("POST", "/api/v1/messages/read", { ids }),
};

// Groups (docs/PROTOCOL.md section 21). Group ids and emails travel in bodies, never in a path.
export const groupsApi = {
  list: () => request("GET", "/api/v1/groups/"),
  create: (emails) => request("POST", "/api/v1/groups/", { members: emails }),
  add: (group, email) => request("POST", "/api/v1/groups/members", { group, email }),
  remove: (group, email) => request("POST", "/api/v1/groups/remove", { group, email }),
  leave: (group) => request("POST", "/api/v1/groups/leave", { group }),
  admin: (group, email) => request("POST", "/api/v1/groups/admins", { group, email }),
  changes: (group, after = 0) => request("POST", "/api/v1/groups/changes", { group, after }),
  receipts: (ids) => request("POST", "/api/v1/groups/receipts", { ids }),
};
