"""Domain errors of the chat app. The REST views turn them into `{"code", "detail"}` answers
(messenger.api) and the consumer into `error` frames (chat.events.error_event)."""

from messenger.errors import Conflict, DomainError


class ChatError(DomainError):
    """Base class of the chat app's domain errors."""


class InvalidFrame(ChatError):
    code = "invalid_frame"
    default_detail = "Invalid frame."


class InvalidEnvelope(ChatError):
    code = "invalid_envelope"
    default_detail = "Invalid envelope."


class BodyTooLarge(ChatError):
    status_code = 413
    code = "body_too_large"
    default_detail = "The message body is too large."


class NotAContact(ChatError):
    """Also the answer for an unknown recipient: whether an email has an account is not
    something a stranger may learn from the messaging endpoint."""

    status_code = 403
    code = "not_a_contact"
    default_detail = "You can only write to accepted contacts."


class ClientIdReused(Conflict, ChatError):
    code = "client_id_reused"
    default_detail = "This client_id was already used for another recipient."


class QuotaExceeded(ChatError):
    """A storage quota on undelivered mail (MESSAGE_QUOTA_*_BYTES) is full. 403 like a
    storage quota elsewhere (nothing to retry at once: room frees as mail is delivered)."""

    status_code = 403
    code = "quota_exceeded"
    default_detail = "The storage quota for undelivered messages is full."


class DeviceMismatch(Conflict, ChatError):
    """A send whose copies are not for exactly the current devices (docs/PROTOCOL.md section
    17.1): nothing was stored; the answer names the devices to add (`missing`) and to drop
    (`extra`), of the recipient (`to`) and of the sender's own account (`own`)."""

    code = "device_mismatch"
    default_detail = "The recipient's or your own devices changed."

    def __init__(self, *, missing: dict[str, list[int]], extra: dict[str, list[int]]):
        self.missing = missing
        self.extra = extra
        super().__init__()

    def fields(self) -> dict:
        return {"missing": self.missing, "extra": self.extra}


class NoDevices(ChatError):
    status_code = 409
    code = "no_devices"
    default_detail = "This contact has no device that can receive messages."


class StaleEpoch(Conflict, ChatError):
    """A group message for an epoch that is not the group's current one (docs/PROTOCOL.md
    section 23): its members or their devices changed; nothing was stored."""

    code = "stale_epoch"
    default_detail = "The group's members or their devices changed."

    def __init__(self, *, epoch: int):
        self.epoch = epoch
        super().__init__()

    def fields(self) -> dict:
        return {"epoch": self.epoch}


class InvalidKeys(ChatError):
    code = "invalid_keys"
    default_detail = "A sender key entry is malformed, repeated, or names no current member device."
