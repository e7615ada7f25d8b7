"""The one exception type of the protocol, with the same codes as the JavaScript ``ErrorCode``."""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    INVALID_KEY = "invalid_key"
    INVALID_BUNDLE = "invalid_bundle"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_SESSION_STATE = "invalid_session_state"
    MALFORMED_ENVELOPE = "malformed_envelope"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    KIND_MISMATCH = "kind_mismatch"
    PLAINTEXT_TOO_LARGE = "plaintext_too_large"
    UNKNOWN_SIGNED_PREKEY = "unknown_signed_prekey"
    UNKNOWN_ONE_TIME_PREKEY = "unknown_one_time_prekey"
    ONE_TIME_PREKEY_REQUIRED = "one_time_prekey_required"
    REPLAYED_INITIAL_MESSAGE = "replayed_initial_message"
    SESSION_MISMATCH = "session_mismatch"
    TOO_MANY_SKIPPED_MESSAGES = "too_many_skipped_messages"
    DUPLICATE_MESSAGE = "duplicate_message"
    AUTHENTICATION_FAILED = "authentication_failed"
    DECRYPTION_FAILED = "decryption_failed"
    CHAIN_EXHAUSTED = "chain_exhausted"
    KEY_ID_EXHAUSTED = "key_id_exhausted"
    INVALID_LINK_CODE = "invalid_link_code"
    INVALID_LINK_BOX = "invalid_link_box"
    UNKNOWN_SENDER_KEY = "unknown_sender_key"
    INVALID_SENDER_KEY = "invalid_sender_key"


class ProtocolError(Exception):
    """Every expected failure of the protocol. ``code`` is stable; the message never contains secrets."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {str(self)!r})"
