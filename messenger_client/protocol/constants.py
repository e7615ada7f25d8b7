"""Protocol parameters, identical to static/js/crypto/constants.js and docs/PROTOCOL.md."""

WIRE_VERSION = 1

X3DH_INFO = b"SecuredMessenger X3DH v1"
ROOT_CHAIN_INFO = b"SecuredMessenger Root Chain v1"
MESSAGE_KEYS_INFO = b"SecuredMessenger Message Keys v1"

# Message chain: HMAC(ck, 0x02) -> next chain key, HMAC(ck, 0x01) -> message key (libsignal order).
MESSAGE_CHAIN_CONSTANT = b"\x02\x01"

MAX_SKIP = 1000
# Twice MAX_SKIP: one message skipping on its previous and its new chain never evicts keys it just derived.
MAX_STORED_SKIPPED_KEYS = 2 * MAX_SKIP

MAX_BODY_LENGTH = 64 * 1024
MAX_PLAINTEXT_BYTES = 32 * 1024

MIN_KEY_ID = 1
MAX_KEY_ID = 2**31 - 1
MAX_ONE_TIME_PREKEYS_PER_BATCH = 100
MAX_MESSAGE_NUMBER = 2**32 - 1

KIND_PREKEY = "prekey"
KIND_MESSAGE = "message"

SAFETY_NUMBER_ITERATIONS = 5200
SAFETY_NUMBER_VERSION = 0

KEY_LENGTH = 32
SIGNATURE_LENGTH = 64
MAC_LENGTH = 32
AES_BLOCK_LENGTH = 16

# Linking a device (PROTOCOL.md section 18).
LINK_INFO = b"SecuredMessenger Link v2"
LINK_VERIFY_INFO = b"SecuredMessenger Link Verify v2"
LINK_CODE_PREFIX = "sm-link"
LINK_CODE_VERSION = 1
LINK_BOX_VERSION = 0x01
LINK_ID_LENGTH = 16

# Sender keys and group messages (PROTOCOL.md section 22).
SENDER_KEY_VERSION = 0x01
GROUP_ID_LENGTH = 16
SENDER_KEY_DISTRIBUTION_LENGTH = 1 + GROUP_ID_LENGTH + 4 + 4 + KEY_LENGTH + KEY_LENGTH
GROUP_HEADER_LENGTH = 1 + 4 + 4
GROUP_PLAINTEXT_TEXT = 0x01
GROUP_PLAINTEXT_SETTINGS = 0x02
GROUP_NAME_MAX_LENGTH = 64
