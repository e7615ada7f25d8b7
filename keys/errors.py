from messenger.errors import Conflict, DomainError, NotFound


class KeysError(DomainError):
    """Base class of the keys app's domain errors."""


class InvalidKeyMaterial(KeysError):
    code = "invalid_key"
    default_detail = "Invalid key material."


class KeyIdReused(Conflict, KeysError):
    code = "key_id_reused"
    default_detail = "A key with this id was already uploaded; key ids are never reused."


class ContactNotFound(NotFound, KeysError):
    """One answer for an unknown email, a stranger and a pending request: key lookups must
    not reveal who has an account or who asked whom."""

    code = "not_found"
    default_detail = "No contact with this email."


class TooManyPreKeys(Conflict, KeysError):
    code = "too_many_prekeys"
    default_detail = "Too many unused one-time prekeys are stored already."


class NoDeviceKeys(Conflict, KeysError):
    code = "no_device_keys"
    default_detail = "This account has no identity key yet; set up the device keys first (PUT /api/v1/keys/identity)."


class WrongPassword(KeysError):
    # 403, not 401: the session is valid (a 401 would make the client refresh and retry).
    status_code = 403
    code = "wrong_password"
    default_detail = "The password is wrong."


class LinkNotFound(NotFound, KeysError):
    """One answer for an unknown link, an expired one, a used one and another account's."""

    code = "not_found"
    default_detail = "No such device link (it may have expired: links live 10 minutes)."


class TooManyLinks(Conflict, KeysError):
    code = "too_many_links"
    default_detail = "This account has as many open device links as it may have; cancel one or wait for it to expire."


class LinkAlreadyOffered(Conflict, KeysError):
    code = "link_already_offered"
    default_detail = "Another device already answered this link; start a new one."


class LinkNotOffered(Conflict, KeysError):
    code = "link_not_offered"
    default_detail = "No device of the account has answered this link yet."


class IdentityKeyMismatch(Conflict, KeysError):
    code = "identity_key_mismatch"
    default_detail = "This is not the account's identity key: the link was answered by another account's device."
