// Linking a browser to an account's existing device (docs/PROTOCOL.md section 18), on both sides:
//
// - NewDeviceLink: this browser holds no keys (a pending session). It opens a link, shows the link
//   code (text and QR code of `<origin>/#link=<code>`), polls for the existing device's answer,
//   shows the verification code and, only after the user confirmed that both screens match, opens
//   the box, builds its device keys around the account's identity seed and registers them.
// - offerLink: this browser is a device of the account. It seals the identity seed for the code
//   the user pasted or scanned and answers the link; the user compares the verification codes.
//
// What travels: the link code holds only the link id and the new device's ephemeral public key;
// the seed crosses the server sealed. Keys are written to IndexedDB only after the server accepted
// the new device, so a refused or abandoned link leaves this browser as it was. The ephemeral
// private key and the seed live in memory only, and are zeroed when done (their base64 copies in
// the stored key records are as safe as every other key here). A `#link=` fragment is read from
// the address bar and removed from it at once; fragments are never sent to the server.
import { ApiError, linksApi } from "./api.js";
import {
  createLinkRequest,
  ErrorCode,
  fromBase64,
  identityKeyPairFromSeed,
  openLinkOffer,
  ProtocolError,
  sealIdentityForLink,
  toBase64,
} from "./crypto/index.js";
import { forgetDeviceWrites, rememberDeviceWrite, thisDeviceName } from "./devices.js";
import { createDeviceKeys, NotSetUpError } from "./session.js";

/** How often the new device asks whether the existing one answered (section 18: every 2 s). */
export const LINK_POLL_MS = 2000;
const LINK_FRAGMENT = "#link=";

/** The address a phone's camera opens from the QR code: the app with the code in the fragment. */
export function linkUrl(origin, code) {
  return `${origin}/${LINK_FRAGMENT}${code}`;
}

/**
 * The link code in the address bar's `#link=` fragment, or null. The fragment is removed from the
 * address bar (history.replaceState: no reload, nothing sent) whether or not it holds a code.
 * @param {{pathname: string, search: string, hash: string}} location
 * @param {{replaceState: Function}} history
 */
export function takeLinkFragment(location, history) {
  if (!location.hash.startsWith(LINK_FRAGMENT)) return null;
  const code = location.hash.slice(LINK_FRAGMENT.length);
  history.replaceState(history.state ?? null, "", `${location.pathname}${location.search}`);
  return code || null;
}

/** What the new device says after the user found that the two codes differ. */
export const DECLINED_MESSAGE =
  "Linking was cancelled because the codes did not match, and nothing was linked. Someone may have tried to " +
  "intercept the link: make a new code and compare again.";

const API_MESSAGES = {
  not_found:
    "This link code has expired or was cancelled (a code lasts 10 minutes and is used once). Make a new code.",
  too_many_links:
    "Your account has too many link codes open. Wait until the earlier ones expire (at most 10 minutes), " +
    "then make a new code.",
  too_many_devices:
    "Your account already has as many devices as it may have. Unlink one in the Devices panel of your " +
    "existing device, then make a new code here.",
  link_already_offered:
    "Another device has already answered this link code. Make a new code on the new device and enter that one.",
  link_not_offered: "Your existing device has not answered this link code yet.",
  identity_key_mismatch:
    "The device that answered does not hold your account's identity key (it may belong to another account). " +
    "Nothing was linked. Make a new code and enter it on a device of this account.",
};

const PROTOCOL_MESSAGES = {
  [ErrorCode.INVALID_LINK_CODE]:
    "That is not a link code. Copy the whole code the new device shows (it starts with sm-link:1:), or " +
    "scan its QR code.",
  [ErrorCode.INVALID_KEY]: "The link code or the answer holds an unusable key. Make a new code.",
  [ErrorCode.AUTHENTICATION_FAILED]:
    "What the existing device sent was changed on the way, so it was not used. Nothing was linked. Make a new code.",
  [ErrorCode.DECRYPTION_FAILED]: "What the existing device sent could not be read. Nothing was linked. Make a new code.",
  [ErrorCode.INVALID_LINK_BOX]:
    "The existing device sent something this browser does not understand (update both?). Nothing was linked.",
};

/** A sentence for the user about a failed step of linking, on either device. */
export function linkErrorMessage(error) {
  if (error instanceof ApiError) {
    if (error.status === 404) return API_MESSAGES.not_found;
    return API_MESSAGES[error.code] || error.userMessage;
  }
  if (error instanceof ProtocolError) {
    return PROTOCOL_MESSAGES[error.code] || "The link failed. Make a new code and try again.";
  }
  if (error instanceof NotSetUpError) return "This browser has no keys for the account, so it cannot link another.";
  return (error && error.message) || "The link failed. Make a new code and try again.";
}

/** The new device's side of one link run; made by NewDeviceLink.open(). */
export class NewDeviceLink {
  constructor(answer, request) {
    this.linkId = answer.link_id;
    this.expiresAt = Date.parse(answer.expires_at);
    this.code = request.code;
    this.ephemeral = request.ephemeral; // SECRET: in memory only, zeroed by forget()
    this.opening = null; // openLinkOffer's result once the answer arrived
    this.finished = false; // confirmed, declined or cancelled: no more polling
    this.cancelled = false;
  }

  /** Opens a link on the server (409 too_many_links at 3 open links) and makes the link code. */
  static async open() {
    const answer = await linksApi.open();
    // createLinkRequest checks the server's link id: canonical base64 of 16 bytes.
    return new NewDeviceLink(answer, createLinkRequest(answer && answer.link_id));
  }

  /**
   * Asks the server once for the existing device's answer: null while there is none, then the
   * verification code to show. 404: the link expired or was cancelled. The box is not opened here.
   */
  async poll() {
    if (this.finished) return null;
    if (this.opening) return this.opening.verificationCode;
    const answer = await linksApi.poll(this.linkId);
    const offer = answer && answer.offer;
    if (!offer || this.finished) return null;
    if (this.opening) return this.opening.verificationCode;
    const options = { code: ErrorCode.INVALID_KEY };
    const offerer = fromBase64(offer.ephemeral_key, { ...options, length: 32, what: "offer key" });
    const box = fromBase64(offer.ciphertext, { ...options, what: "offer box" });
    this.opening = openLinkOffer(
      this.ephemeral.privateKey,
      fromBase64(this.linkId, { length: 16, what: "link id" }),
      this.ephemeral.publicKey,
      offerer,
      box,
    );
    return this.opening.verificationCode;
  }

  /**
   * The user confirmed that both devices show the same code: opens the box, makes this browser's
   * device keys around the account's identity seed and registers them (`POST /api/v1/devices`,
   * which binds this session to the new device). The keys and the device number are written to
   * `store` only after the server accepted them. Returns the server's answer (`auth/me`'s form).
   *
   * The seed's public key is compared with the account's identity key by the server: a pending
   * session may not ask `POST /api/v1/keys/devices` (section 15: 403 device_required), and
   * `POST /api/v1/devices` refuses keys that are not the account's (409 identity_key_mismatch),
   * which is reported as the key mismatch of section 18.
   */
  async confirm(store) {
    if (!this.opening) throw new Error("No answer from your existing device yet.");
    this.finished = true;
    let keys;
    const seed = await this.opening.open().finally(() => this.forget());
    try {
      keys = createDeviceKeys({ identityKeyPair: identityKeyPairFromSeed(seed) });
    } finally {
      seed.fill(0);
    }
    const answer = await linksApi.complete({ link_id: this.linkId, device_name: thisDeviceName(), ...keys.publicKeys });
    if (!answer || !answer.device || !Number.isInteger(answer.device.id)) {
      throw new Error("The server did not say which device this browser became. Sign in again.");
    }
    await store.write([...forgetDeviceWrites(), ...keys.writes, rememberDeviceWrite(answer.device)]);
    return answer;
  }

  /**
   * The user said the codes differ: the answer is thrown away unopened and the link cancelled.
   * Should the cancel not reach the server, the link expires on its own: nobody can complete it
   * without the seed, which stays sealed (the new device's keys must be signed with it).
   */
  async decline() {
    try {
      await this.cancel();
    } catch {
      // Nothing was linked either way (above); the user is told so.
    }
  }

  /** Ends this run: forgets its secrets and cancels the link on the server (gone already: fine). */
  async cancel() {
    this.finished = true;
    if (this.opening) this.opening.discard();
    this.forget();
    if (this.cancelled) return;
    this.cancelled = true;
    try {
      await linksApi.cancel(this.linkId);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
  }

  forget() {
    this.ephemeral.privateKey.fill(0);
  }
}

/**
 * The existing device's side: seals this browser's copy of the account's identity seed for the new
 * device named by `text` (a link code or its URL) and answers the link. Returns the verification
 * code to show. A text that is not a link code is refused before anything is sent.
 * @param {{getKey: (name: string) => Promise<object | null>}} store
 */
export async function offerLink(store, text) {
  const identity = await store.getKey("identity");
  if (!identity) throw new NotSetUpError();
  const seed = fromBase64(identity.privateKey, { length: 32, what: "identity private key" });
  let offer;
  try {
    offer = await sealIdentityForLink(seed, text);
  } finally {
    seed.fill(0);
  }
  await linksApi.offer({
    link_id: toBase64(offer.linkId),
    ephemeral_key: toBase64(offer.ephemeralKey),
    ciphertext: toBase64(offer.ciphertext),
  });
  return offer.verificationCode;
}
