// This browser as a device of an account (docs/PROTOCOL.md part II, sections 14, 15 and 19): the
// number the server gave it, which the sign-in sends back; the name it registers with; and what
// it forgets when it finds itself unlinked.
//
// The number is stored per account in IndexedDB (meta `deviceId`), written from the answers that
// carry it: registration (device 1), sign-in, and start over (PUT keys/identity). A database
// written before devices existed has keys but no number: those keys are device 1 (section 19).
import { localDevicesOf } from "./storage.js";

const DEVICE_NAME_MAX = 64; // accounts/models.py DEVICE_NAME_MAX_LENGTH

// Known names only, tried in order: the user agent's own text is never sent, so the name holds
// no version numbers or build strings, and nothing a page could not show as it is.
const BRANDS = [
  ["Microsoft Edge", "Edge"],
  ["Opera", "Opera"],
  ["Brave", "Brave"],
  ["Google Chrome", "Chrome"],
  ["Chromium", "Chromium"],
];
const AGENT_BROWSERS = [
  [/\bEdg(e|A|iOS)?\//, "Edge"],
  [/\b(OPR|Opera)\//, "Opera"],
  [/\bFirefox\/|\bFxiOS\//, "Firefox"],
  [/\b(CriOS|Chrome|HeadlessChrome)\//, "Chrome"],
  [/\bVersion\/[\d.]+.*\bSafari\//, "Safari"],
];
const PLATFORMS = {
  windows: "Windows",
  macos: "macOS",
  linux: "Linux",
  android: "Android",
  ios: "iOS",
  "chrome os": "ChromeOS",
  chromeos: "ChromeOS",
};
const AGENT_PLATFORMS = [
  [/\b(iPhone|iPad|iPod)\b/, "iOS"],
  [/\bAndroid\b/, "Android"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bWindows\b/, "Windows"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS"],
  [/\bLinux\b/, "Linux"],
];

/**
 * A device name for registration and start over, e.g. "Chromium on Linux", from what the browser
 * says of itself: `brands` and `platform` (navigator.userAgentData, where the browser has it)
 * before the `userAgent` string. At most DEVICE_NAME_MAX characters; "Browser" when nothing is
 * recognised. The user can rename it in the Devices panel.
 * @param {{userAgent?: string, brands?: {brand: string}[], platform?: string}} agent
 */
export function deviceNameFor({ userAgent = "", brands = [], platform = "" } = {}) {
  const names = new Set((brands || []).map((b) => b && b.brand));
  const brand = BRANDS.find(([name]) => names.has(name));
  const fromAgent = AGENT_BROWSERS.find(([pattern]) => pattern.test(userAgent));
  const browser = brand ? brand[1] : fromAgent ? fromAgent[1] : "Browser";
  const knownPlatform = PLATFORMS[String(platform || "").toLowerCase()];
  const agentPlatform = AGENT_PLATFORMS.find(([pattern]) => pattern.test(userAgent));
  const system = knownPlatform || (agentPlatform ? agentPlatform[1] : null);
  return (system ? `${browser} on ${system}` : browser).slice(0, DEVICE_NAME_MAX);
}

/** This browser's name (deviceNameFor of `navigator`). */
export function thisDeviceName() {
  const data = navigator.userAgentData;
  return deviceNameFor({
    userAgent: navigator.userAgent || "",
    brands: data && Array.isArray(data.brands) ? data.brands : [],
    platform: data ? data.platform : "",
  });
}

/**
 * The number to sign in with, given what this browser holds for an account: the stored number;
 * 1 for keys without a number (a database from before devices, section 19); null without keys,
 * which asks the server for a pending session (nothing here can act as a device).
 */
export function deviceIdOf({ deviceId = null, hasKeys = false } = {}) {
  if (!hasKeys) return null;
  return Number.isInteger(deviceId) && deviceId > 0 ? deviceId : 1;
}

/**
 * The number to send with a sign-in of `email`, and the local account it came from ({account,
 * deviceId}; account null when this browser holds nothing of that email). Several accounts of
 * one email (one deleted, one made later) can be in one database: the most recent is taken, and
 * the sign-in page checks the answer's account (`deviceIdForAccount`).
 */
export async function deviceIdForLogin(email) {
  const [latest] = await localDevicesOf(email);
  return latest ? { account: latest.account, deviceId: deviceIdOf(latest) } : { account: null, deviceId: null };
}

/** The number to send for the local account `account` (`<user id>:<email>`). */
export async function deviceIdForAccount(account) {
  const email = account.slice(account.indexOf(":") + 1);
  const local = (await localDevicesOf(email)).find((entry) => entry.account === account);
  return local ? deviceIdOf(local) : null;
}

/** The stored number of this browser for the account of `store`, by the rule of deviceIdOf. */
export async function storedDeviceId(store) {
  const [deviceId, identity] = await Promise.all([store.getMeta("deviceId"), store.getKey("identity")]);
  return deviceIdOf({ deviceId, hasKeys: Boolean(identity) });
}

/** The write that records `device` ({id, name}, from a server answer) as this browser. */
export function rememberDeviceWrite(device) {
  return { put: "meta", value: { name: "deviceId", value: device.id } };
}

/**
 * Writes that forget this browser's device for the account: its keys (identity, signed and
 * one-time prekeys), every Double Ratchet session, the replay guard, messages not sent yet (they
 * were encrypted for sessions that are gone), the key counters and the device number. The
 * decrypted history, the contacts and the identity keys trusted for them stay: a device set up
 * here again still shows the history and still notices a contact's key change.
 *
 * Used before a start over (new keys follow in the same transaction) and when this browser was
 * unlinked: a removed device still holds the account's identity key (docs/PROTOCOL.md section
 * 20), and nothing it could still do with it is wanted, so the key goes at once.
 */
export function forgetDeviceWrites() {
  return ["signalKeys", "signalSessions", "ephemeralKeys", "outbox"]
    .map((clear) => ({ clear }))
    .concat(["nextOneTimePrekeyId", "nextSignedPrekeyId", "signedPrekey", "deviceId"].map((name) => ({ delete: "meta", key: [name] })));
}
