#!/usr/bin/env node
/**
 * Test driver: runs the browser crypto modules (static/js/crypto) under Node for the pytest interop
 * tests. Protocol: one JSON object per line on stdin, `{"id", "command", ...args}`; one JSON object per
 * line on stdout, `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`.
 * An exception that is not a ProtocolError is reported with code "internal" so tests fail on it.
 *
 * It plays a whole client's key handling the way the browser must: accounts with signed and one-time
 * prekeys, sessions per peer, and the receive routing of static/js/crypto/session.js (decrypt with the
 * existing session, or accept a new initial message; one-time prekey deleted and ephemeral key
 * remembered only on success). All bytes travel as base64. Sender keys (group_* and sender_key_*) are
 * stateless here: states and records travel in and out as the JSON both languages store.
 */
import { createInterface } from 'node:readline';
import {
  ProtocolError,
  acceptInitialMessage,
  createLinkRequest,
  createSenderKey,
  decryptGroupMessage,
  decryptMessage,
  encryptGroupMessage,
  encryptMessage,
  fromBase64,
  generateIdentityKeyPair,
  generateOneTimePrekeys,
  generateSignedPrekey,
  initiateSession,
  isInitialMessageForSession,
  openLinkOffer,
  parseEnvelope,
  parseLinkCode,
  parseSenderKeyDistribution,
  publicOneTimePrekey,
  publicSignedPrekey,
  receivedSenderKeys,
  registrationKeys,
  safetyNumber,
  sealIdentityForLink,
  senderKeyDistribution,
  toBase64,
} from '../../static/js/crypto/index.js';

/** link name -> the new device's ephemeral key pair (Uint8Array), between link_request and link_open. */
const links = new Map();

/** name -> { identityKeyPair, signedPrekeys: Map, oneTimePrekeys: Map, nextOneTimePrekeyId, usedEphemeralKeys: Map<spkId, Set>, sessions: Map<peer, session> } */
const accounts = new Map();

function account(name) {
  const found = accounts.get(name);
  if (!found) throw new Error(`no account ${name}`);
  return found;
}

function session(name, peer) {
  const found = account(name).sessions.get(peer);
  if (!found) throw new Error(`no session ${name} -> ${peer}`);
  return found;
}

const commands = {
  create_account({ name, one_time_prekeys: count = 10 }) {
    const identityKeyPair = generateIdentityKeyPair();
    const signedPrekey = generateSignedPrekey(identityKeyPair, 1);
    const { prekeys, nextKeyId } = generateOneTimePrekeys(1, count);
    accounts.set(name, {
      identityKeyPair,
      signedPrekeys: new Map([[signedPrekey.keyId, signedPrekey]]),
      currentSignedPrekeyId: signedPrekey.keyId,
      oneTimePrekeys: new Map(prekeys.map((prekey) => [prekey.keyId, prekey])),
      nextOneTimePrekeyId: nextKeyId,
      usedEphemeralKeys: new Map(),
      sessions: new Map(),
    });
    return registrationKeys({ identityKeyPair, signedPrekey, oneTimePrekeys: prekeys });
  },

  one_time_prekey_ids({ name }) {
    return [...account(name).oneTimePrekeys.keys()];
  },

  bundle({ name, one_time_prekey_id: oneTimeId = null }) {
    const acct = account(name);
    return {
      identity_key: acct.identityKeyPair.publicKey,
      signed_prekey: publicSignedPrekey(acct.signedPrekeys.get(acct.currentSignedPrekeyId)),
      one_time_prekey: oneTimeId === null ? null : publicOneTimePrekey(acct.oneTimePrekeys.get(oneTimeId)),
    };
  },

  async initiate({ name, peer, bundle }) {
    const acct = account(name);
    const result = await initiateSession({ identityKeyPair: acct.identityKeyPair, bundle });
    acct.sessions.set(peer, result.session);
    return { remote_identity_key: result.remoteIdentityKey };
  },

  async encrypt({ name, peer, plaintext }) {
    const result = await encryptMessage(session(name, peer), fromBase64(plaintext));
    account(name).sessions.set(peer, result.session);
    return { kind: result.kind, body: result.body };
  },

  async receive({ name, peer, kind, body }) {
    const acct = account(name);
    const envelope = parseEnvelope(kind, body);
    const current = acct.sessions.get(peer);
    if (envelope.kind === 'message' || isInitialMessageForSession(current, envelope)) {
      if (!current) throw new ProtocolError('session_mismatch', 'no session with this sender');
      const result = await decryptMessage(current, envelope);
      acct.sessions.set(peer, result.session);
      return { plaintext: toBase64(result.plaintext), new_session: false, consumed_one_time_prekey_id: null };
    }
    const { signedPrekeyId, oneTimePrekeyId } = envelope.prekey;
    const usedEphemeralKeys = {
      has: (key) => [...acct.usedEphemeralKeys.values()].some((keys) => keys.has(key)),
    };
    const result = await acceptInitialMessage({
      identityKeyPair: acct.identityKeyPair,
      signedPrekey: acct.signedPrekeys.get(signedPrekeyId) ?? null,
      oneTimePrekey: oneTimePrekeyId === null ? null : acct.oneTimePrekeys.get(oneTimePrekeyId) ?? null,
      envelope,
      usedEphemeralKeys,
    });
    // Success only: spend the one-time prekey, remember the ephemeral key, store the new session.
    if (result.consumedOneTimePrekeyId !== null) acct.oneTimePrekeys.delete(result.consumedOneTimePrekeyId);
    if (!acct.usedEphemeralKeys.has(signedPrekeyId)) acct.usedEphemeralKeys.set(signedPrekeyId, new Set());
    acct.usedEphemeralKeys.get(signedPrekeyId).add(result.ephemeralKey);
    acct.sessions.set(peer, result.session);
    return {
      plaintext: toBase64(result.plaintext),
      new_session: true,
      consumed_one_time_prekey_id: result.consumedOneTimePrekeyId,
    };
  },

  session_state({ name, peer }) {
    return session(name, peer);
  },

  roundtrip_session({ name, peer }) {
    const restored = JSON.parse(JSON.stringify(session(name, peer)));
    account(name).sessions.set(peer, restored);
    return null;
  },

  safety_number({ a, b }) {
    return safetyNumber(a, b);
  },

  // Device linking (section 18): the new device's two steps and the existing device's one.
  link_request({ name, link_id: linkId }) {
    const { ephemeral, code } = createLinkRequest(linkId);
    links.set(name, ephemeral);
    return { code, ephemeral_public_key: toBase64(ephemeral.publicKey) };
  },

  async link_seal({ identity_seed: seed, code }) {
    const offer = await sealIdentityForLink(fromBase64(seed), code);
    return {
      link_id: toBase64(offer.linkId),
      ephemeral_key: toBase64(offer.ephemeralKey),
      ciphertext: toBase64(offer.ciphertext),
      verification_code: offer.verificationCode,
    };
  },

  async link_open({ name, code, ephemeral_key: ephemeralKey, ciphertext }) {
    const ephemeral = links.get(name);
    if (!ephemeral) throw new Error(`no link ${name}`);
    const { linkId, publicKey } = parseLinkCode(code);
    const opening = openLinkOffer(ephemeral.privateKey, linkId, publicKey, fromBase64(ephemeralKey), fromBase64(ciphertext));
    links.delete(name);
    return { verification_code: opening.verificationCode, identity_seed: toBase64(await opening.open()) };
  },

  // Sender keys (section 22).
  sender_key_create() {
    return createSenderKey();
  },

  sender_key_distribution({ state, group }) {
    return toBase64(senderKeyDistribution(state, group));
  },

  sender_key_receive({ record, distribution, group }) {
    return receivedSenderKeys(record, parseSenderKeyDistribution(fromBase64(distribution), group));
  },

  async group_encrypt({ state, group, identity_key: senderIdentityKey, device: senderDevice, plaintext }) {
    const labels = { groupId: group, senderIdentityKey, senderDevice };
    return encryptGroupMessage(state, { ...labels, plaintext: fromBase64(plaintext) });
  },

  async group_decrypt({ record, group, identity_key: senderIdentityKey, device: senderDevice, body }) {
    const result = await decryptGroupMessage(record, { groupId: group, senderIdentityKey, senderDevice, body });
    return { record: result.record, plaintext: toBase64(result.plaintext) };
  },
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
let queue = Promise.resolve();
lines.on('line', (line) => {
  // Strictly one command at a time, in order: sessions are stateful.
  queue = queue.then(async () => {
    let request;
    let reply;
    try {
      request = JSON.parse(line);
      const handler = commands[request.command];
      if (!handler) throw new Error(`unknown command ${request.command}`);
      reply = { id: request.id, ok: true, result: (await handler(request)) ?? null };
    } catch (error) {
      reply =
        error instanceof ProtocolError
          ? { id: request?.id, ok: false, error: { code: error.code, message: error.message } }
          : { id: request?.id, ok: false, error: { code: 'internal', message: String(error?.stack ?? error) } };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  });
});
