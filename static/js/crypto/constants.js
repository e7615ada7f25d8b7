/**
 * Protocol parameters. Every value here is part of the wire protocol or of its limits and is written
 * down in docs/PROTOCOL.md; changing one breaks interoperability with existing sessions and clients.
 */

/** Version byte at the start of every envelope body. */
export const WIRE_VERSION = 1;

/** HKDF info strings (ASCII). Distinct per use so that no two derivations can ever share an output. */
export const X3DH_INFO = 'SecuredMessenger X3DH v1';
export const ROOT_CHAIN_INFO = 'SecuredMessenger Root Chain v1';
export const MESSAGE_KEYS_INFO = 'SecuredMessenger Message Keys v1';

/** Message chain KDF inputs (libsignal order): HMAC(ck, 0x02) -> next chain key, HMAC(ck, 0x01) -> message key. */
export const CHAIN_KEY_SEED = 0x02;
export const MESSAGE_KEY_SEED = 0x01;

/** Largest number of message keys one incoming message may make us derive and store (spec MAX_SKIP). */
export const MAX_SKIP = 1000;
/**
 * Largest number of skipped message keys kept per session; the oldest are evicted first. Twice MAX_SKIP so
 * that one message skipping on both its previous and its new chain never evicts keys it just derived.
 */
export const MAX_STORED_SKIPPED_KEYS = 2 * MAX_SKIP;

/** Envelope `body` limit enforced by the server (characters of base64 text). */
export const MAX_BODY_LENGTH = 64 * 1024;
/** Largest plaintext accepted by encryptMessage; the resulting prekey body stays well under MAX_BODY_LENGTH. */
export const MAX_PLAINTEXT_BYTES = 32 * 1024;

/** Key ids are positive and fit a signed 32-bit database column. */
export const MIN_KEY_ID = 1;
export const MAX_KEY_ID = 2 ** 31 - 1;
/** Most one-time prekeys the server accepts in one upload, hence the largest batch generated at once. */
export const MAX_ONE_TIME_PREKEYS_PER_BATCH = 100;

/** Message numbers travel as unsigned 32-bit integers. */
export const MAX_MESSAGE_NUMBER = 2 ** 32 - 1;

/** Envelope kinds, as in the server envelope's `kind` field. */
export const EnvelopeKind = Object.freeze({ PREKEY: 'prekey', MESSAGE: 'message' });

/** Safety number: iterations of SHA-512 per identity key, and fingerprint format version. */
export const SAFETY_NUMBER_ITERATIONS = 5200;
export const SAFETY_NUMBER_VERSION = 0;

/** Sizes in bytes. */
export const KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
export const MAC_LENGTH = 32;
export const AES_BLOCK_LENGTH = 16;

/** Linking a device (PROTOCOL.md section 18): HKDF info strings, the link code and the box format. */
export const LINK_INFO = 'SecuredMessenger Link v2';
export const LINK_VERIFY_INFO = 'SecuredMessenger Link Verify v2';
export const LINK_CODE_PREFIX = 'sm-link';
export const LINK_CODE_VERSION = 1;
export const LINK_BOX_VERSION = 0x01;
export const LINK_ID_LENGTH = 16;

/**
 * Sender keys and group messages (PROTOCOL.md section 22): the version byte of a distribution and of a
 * message header, the sizes of the group id, distribution and header, and the plaintext types.
 */
export const SENDER_KEY_VERSION = 0x01;
export const GROUP_ID_LENGTH = 16;
export const SENDER_KEY_DISTRIBUTION_LENGTH = 1 + GROUP_ID_LENGTH + 4 + 4 + KEY_LENGTH + KEY_LENGTH;
export const GROUP_HEADER_LENGTH = 1 + 4 + 4;
export const GroupPlaintextType = Object.freeze({ TEXT: 0x01, SETTINGS: 0x02 });
export const GROUP_NAME_MAX_LENGTH = 64;
