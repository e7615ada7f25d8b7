// Transport: owns this client's chat socket (../socket.js: reconnects, close codes, dispatch).
// REST calls go through ../api.js. The other modules only send frames and ask whether the socket is
// open; a frame the socket does not take is dropped (send answers false), and whatever needs it is
// sent again on the next connect.
import { refreshSession } from "../api.js";
import { ChatSocket } from "../socket.js";

export class Transport {
  constructor() {
    this.socket = null;
  }

  /** Connects; `handlers` is the dispatch table of server frames (client.js fills it). */
  start({ handlers, onStatus, onSessionEnded, onDeviceRemoved, onOpen, onNotice }) {
    this.socket = new ChatSocket({
      handlers,
      onStatus,
      refresh: () => refreshSession(),
      onSessionEnded,
      onDeviceRemoved,
      onOpen,
      onNotice,
    });
    this.socket.start();
  }

  stop() {
    if (this.socket) this.socket.stop();
  }

  get isOpen() {
    return Boolean(this.socket && this.socket.isOpen);
  }

  /** Hands a frame to the socket; false if it is not open. */
  send(frame) {
    return Boolean(this.socket && this.socket.send(frame));
  }
}
