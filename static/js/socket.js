// The chat WebSocket (/ws/chat/): lifecycle, reconnect with backoff, and routing of server frames
// through one dispatch table (given by the caller, see client.js).
//
// Close codes from the server (chat/consumers.py):
//   4401  no valid access token (or it expired while the socket was open): refresh, then reconnect
//   4403  session revoked (logout, deactivation): the user must sign in again; with the reason
//         `device_removed` this browser was unlinked from the account (onDeviceRemoved). Not every
//         ASGI server sends the reason (daphne drops it): onSessionEnded must find out itself.
//   4429  the account already has the most sockets the server allows open at once (other tabs or
//         devices): tell the user, and try again only after TOO_MANY_SOCKETS_RETRY_MS (with jitter),
//         never in a tight loop; a tab that is closed elsewhere frees a place
// Anything else (network loss, server restart) reconnects with exponential backoff and jitter.
// On every (re)connect the server sends the undelivered backlog, then `queue_empty`.

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_REVOKED = 4403;
const REASON_DEVICE_REMOVED = "device_removed";
const CLOSE_TOO_MANY_SOCKETS = 4429;
const TOO_MANY_SOCKETS_RETRY_MS = 60000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
// Liveness: every HEARTBEAT_MS the client asks for a resync (`sync`, answered by `queue_empty`);
// no frame at all within HEARTBEAT_TIMEOUT_MS means a dead connection.
const HEARTBEAT_MS = 30000;
const HEARTBEAT_TIMEOUT_MS = 10000;

export const Connection = Object.freeze({
  CONNECTING: "connecting",
  ONLINE: "online",
  RECONNECTING: "reconnecting",
  OFFLINE: "offline",
});

export class ChatSocket {
  /**
   * @param {object} options
   * @param {Record<string, (frame: object) => void>} options.handlers the dispatch table, by frame type
   * @param {(status: string) => void} options.onStatus connection status changes
   * @param {() => Promise<boolean>} options.refresh refreshes the access cookie; false: session over
   * @param {() => void} options.onSessionEnded the user must sign in again
   * @param {() => void} [options.onDeviceRemoved] this browser was unlinked (default: onSessionEnded)
   * @param {() => void} [options.onOpen] the connection is authenticated and up
   * @param {(text: string | null) => void} [options.onNotice] a message for the user (null: clear it)
   */
  constructor({ handlers, onStatus, refresh, onSessionEnded, onDeviceRemoved = null, onOpen = () => {}, onNotice = () => {} }) {
    this.handlers = handlers;
    this.onStatus = onStatus;
    this.refresh = refresh;
    this.onSessionEnded = onSessionEnded;
    this.onDeviceRemoved = onDeviceRemoved || onSessionEnded;
    this.onOpen = onOpen;
    this.onNotice = onNotice;
    this.refused = false;
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.unauthorizedInARow = 0;
    this.status = Connection.OFFLINE;
    this.heartbeat = null;
    this.lastFrameAt = 0;
    this.handleOnline = () => this.reconnectNow();
    // The browser says the network is gone: a socket may look open for minutes without carrying
    // anything, so it is dropped now and messages wait in the outbox.
    this.handleOffline = () => this.drop();
  }

  get url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws/chat/`;
  }

  get isOpen() {
    return Boolean(this.ws && this.ready && this.ws.readyState === WebSocket.OPEN);
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.onStatus(status);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.handleOnline);
    window.addEventListener("offline", this.handleOffline);
    this.setStatus(Connection.CONNECTING);
    this.open();
  }

  /** Abandons the current socket (dead or offline) and reconnects with backoff. */
  drop() {
    const ws = this.ws;
    this.ws = null;
    this.stopHeartbeat();
    if (ws) ws.close();
    this.scheduleReconnect();
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      if (!this.isOpen) return;
      const asked = Date.now();
      this.send({ type: "sync" });
      setTimeout(() => {
        if (this.isOpen && this.lastFrameAt < asked) this.drop();
      }, HEARTBEAT_TIMEOUT_MS);
    }, HEARTBEAT_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  stop() {
    this.stopped = true;
    this.stopHeartbeat();
    window.removeEventListener("online", this.handleOnline);
    window.removeEventListener("offline", this.handleOffline);
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.setStatus(Connection.OFFLINE);
  }

  open() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    // An unauthenticated socket is accepted and then closed with 4401, so "open" proves nothing:
    // the connection counts as up at its first frame (the server always starts with the backlog
    // and `queue_empty`).
    let greeted = false;
    this.ready = false;
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      if (!greeted) {
        greeted = true;
        this.ready = true;
        this.attempt = 0;
        this.setStatus(Connection.ONLINE);
        if (this.refused) {
          this.refused = false;
          this.onNotice(null);
        }
        this.startHeartbeat();
        this.onOpen();
      }
      this.dispatch(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.closed(event.code, event.reason);
    });
  }

  dispatch(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    // Only an authenticated socket receives frames.
    this.unauthorizedInARow = 0;
    this.lastFrameAt = Date.now();
    const handler = Object.prototype.hasOwnProperty.call(this.handlers, frame.type) ? this.handlers[frame.type] : null;
    if (handler) handler(frame);
  }

  async closed(code, reason = "") {
    if (this.stopped) return;
    if (code === CLOSE_REVOKED) {
      this.stop();
      if (reason === REASON_DEVICE_REMOVED) this.onDeviceRemoved();
      else this.onSessionEnded();
      return;
    }
    if (code === CLOSE_TOO_MANY_SOCKETS) {
      this.refused = true;
      this.onNotice(
        "Too many connections are open for this account (other tabs or devices). " +
          "Close one; this tab tries again every minute.",
      );
      this.scheduleReconnect(TOO_MANY_SOCKETS_RETRY_MS);
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED) {
      this.setStatus(Connection.RECONNECTING);
      this.unauthorizedInARow += 1;
      // A fresh token that is refused again right away means the session is gone: do not loop.
      let refreshed = false;
      try {
        refreshed = this.unauthorizedInARow <= 2 && (await this.refresh());
      } catch {
        this.scheduleReconnect();
        return;
      }
      if (!refreshed) {
        this.stop();
        this.onSessionEnded();
        return;
      }
      this.open();
      return;
    }
    this.scheduleReconnect();
  }

  /** @param {number} [atLeastMs] wait at least this long (the server asked for a pause) */
  scheduleReconnect(atLeastMs = 0) {
    if (this.stopped) return;
    this.setStatus(navigator.onLine === false ? Connection.OFFLINE : Connection.RECONNECTING);
    const ceiling = Math.max(atLeastMs * 2, Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  reconnectNow() {
    // After 4429 the pause the server asked for holds, network change or not.
    if (this.stopped || this.isOpen || this.refused) return;
    this.attempt = 0;
    if (this.ws) return; // still connecting
    this.open();
  }

  /** Sends a frame if the socket is open; returns whether it was handed to the socket. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
