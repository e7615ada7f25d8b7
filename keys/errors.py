from messenger.errors import Conflict, DomainError


class KeysError(DomainError):
    """Base class of the keys app's domain errors."""


class InvalidKeyMaterial(KeysError):
    code = "invalid_key"
    default_detail = "Invalid key material."


class KeyIdReused(Conflict, KeysError):
    code = "key_id_reused"
    default_detail = "A key with this id was already uploaded; key ids are never reused."
