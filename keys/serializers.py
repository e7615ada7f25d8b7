"""Request and response shapes of key material. Field-level validation delegates to
`keys.validation`; cross-field rules (signature under the identity key, unique ids within
one upload) are checked where both fields are known."""

import base64
import binascii

from django.conf import settings
from rest_framework import serializers

from accounts.models import MAX_DEVICE_ID, MIN_DEVICE_ID
from accounts.serializers import DeviceNameField, DeviceSerializer, NewAccountSerializer
from keys import validation
from keys.errors import InvalidKeyMaterial
from keys.models import MAX_KEY_ID, MIN_KEY_ID
from messenger.fields import BoundedListField

MAX_ONE_TIME_PREKEYS_PER_UPLOAD = 100


def _as_field_error(func, value, **kwargs):
    try:
        func(value, **kwargs)
    except InvalidKeyMaterial as exc:
        raise serializers.ValidationError(exc.detail) from None
    return value


class Ed25519PublicKeyField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Standard base64 of a raw 32-byte Ed25519 public key.")
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        return _as_field_error(validation.validate_ed25519_public_key, super().to_internal_value(data))


class X25519PublicKeyField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Standard base64 of a raw 32-byte X25519 public key.")
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        return _as_field_error(validation.validate_x25519_public_key, super().to_internal_value(data))


class SignatureField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Standard base64 of a 64-byte Ed25519 signature.")
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return _as_field_error(validation.decode_base64, value, length=validation.SIGNATURE_LENGTH, what="signature")


class KeyIdField(serializers.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=MIN_KEY_ID, max_value=MAX_KEY_ID, **kwargs)


class SignedPreKeySerializer(serializers.Serializer):
    key_id = KeyIdField()
    public_key = X25519PublicKeyField()
    signature = SignatureField()


class OneTimePreKeySerializer(serializers.Serializer):
    key_id = KeyIdField()
    public_key = X25519PublicKeyField()


class OneTimePreKeyListField(BoundedListField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_ONE_TIME_PREKEYS_PER_UPLOAD)
        super().__init__(child=OneTimePreKeySerializer(), **kwargs)

    def to_internal_value(self, data):
        keys = super().to_internal_value(data)
        ids = [key["key_id"] for key in keys]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("One-time prekey ids must be unique.")
        return keys


def verify_signed_prekey_signature(identity_key_b64: str, signed_prekey: dict) -> None:
    """Raise a field error unless the signed prekey is signed by this identity key."""
    identity_raw = validation.decode_base64(identity_key_b64, length=validation.KEY_LENGTH)
    prekey_raw = validation.decode_base64(signed_prekey["public_key"], length=validation.KEY_LENGTH)
    try:
        validation.verify_prekey_signature(identity_raw, prekey_raw, signed_prekey["signature"])
    except InvalidKeyMaterial as exc:
        raise serializers.ValidationError({"signed_prekey": {"signature": [exc.detail]}}) from None


# --- registration (`/api/v1/auth/register`) -------------------------------------------------


# An account (email and password, with the accounts app's rules) and its first device keys. No
# docstring, here or in the base class: drf-spectacular would publish it in the API schema.
class RegisterSerializer(NewAccountSerializer):
    device_name = DeviceNameField(required=False)
    identity_key = Ed25519PublicKeyField()
    signed_prekey = SignedPreKeySerializer()
    one_time_prekeys = OneTimePreKeyListField()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        verify_signed_prekey_signature(attrs["identity_key"], attrs["signed_prekey"])
        return attrs


# --- the keys API (`/api/v1/keys/`) ---------------------------------------------------------


class KeyOwnerSerializer(serializers.Serializer):
    """Whose keys: the email travels in the body, never in the path (access logs)."""

    email = serializers.EmailField(max_length=254, help_text="The contact's email.")


class BundlesRequestSerializer(KeyOwnerSerializer):
    email = serializers.EmailField(max_length=254, help_text="A contact's email, or your own.")
    device_ids = BoundedListField(
        child=serializers.IntegerField(min_value=MIN_DEVICE_ID, max_value=MAX_DEVICE_ID),
        required=False,
        allow_empty=False,
        max_length=settings.DEVICES_PER_ACCOUNT_MAX,
        help_text="Only these devices (active ones; others are left out of the answer). Default: all.",
    )


class DeviceBundleSerializer(serializers.Serializer):
    device_id = serializers.IntegerField()
    signed_prekey = SignedPreKeySerializer(help_text="Verify its signature under identity_key before use.")
    one_time_prekey = OneTimePreKeySerializer(
        allow_null=True, help_text="Claimed for you and never handed out again; null when none is left."
    )


class DeviceBundlesSerializer(serializers.Serializer):
    identity_key = serializers.CharField(help_text="The account's Ed25519 identity key (base64), one for all devices.")
    devices = DeviceBundleSerializer(many=True, help_text="Ascending device id.")


class DeviceIdsSerializer(serializers.Serializer):
    identity_key = serializers.CharField(help_text="The account's Ed25519 identity key (base64).")
    device_ids = serializers.ListField(child=serializers.IntegerField(), help_text="Active devices, ascending.")


class PreKeyBundleSerializer(serializers.Serializer):
    identity_key = serializers.CharField(help_text="The owner's Ed25519 identity key (base64).")
    signed_prekey = SignedPreKeySerializer(help_text="Verify its signature under identity_key before use.")
    one_time_prekey = OneTimePreKeySerializer(
        allow_null=True, help_text="Claimed for you and never handed out again; null when none is left."
    )


class IdentityKeySerializer(serializers.Serializer):
    identity_key = serializers.CharField(help_text="Ed25519 identity key (base64).")


class PreKeyStatusSerializer(serializers.Serializer):
    identity_key = serializers.CharField(
        allow_null=True, help_text="The account's current identity key: a browser holding another one was replaced."
    )
    count = serializers.IntegerField(help_text="Unused one-time prekeys stored now.")
    low_threshold = serializers.IntegerField(help_text="Upload more when count is below this.")
    max_unused = serializers.IntegerField(help_text="The most unused one-time prekeys that may be stored.")
    signed_prekey_id = serializers.IntegerField(allow_null=True)
    signed_prekey_created_at = serializers.DateTimeField(allow_null=True)
    signed_prekey_age_seconds = serializers.IntegerField(allow_null=True)
    signed_prekey_max_age_seconds = serializers.IntegerField(help_text="Rotate the signed prekey before this age.")


class PreKeyUploadSerializer(serializers.Serializer):
    one_time_prekeys = OneTimePreKeyListField(
        allow_empty=False, help_text=f"1 to {MAX_ONE_TIME_PREKEYS_PER_UPLOAD} keys with ids never used before."
    )


class PreKeyCountSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Unused one-time prekeys stored after the upload.")


class SignedPreKeyStatusSerializer(serializers.Serializer):
    key_id = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class IdentityResetSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=1024, trim_whitespace=False, write_only=True)
    device_name = DeviceNameField(required=False)
    identity_key = Ed25519PublicKeyField()
    signed_prekey = SignedPreKeySerializer()
    one_time_prekeys = OneTimePreKeyListField()

    def validate(self, attrs):
        verify_signed_prekey_signature(attrs["identity_key"], attrs["signed_prekey"])
        return attrs


class IdentityResetResultSerializer(serializers.Serializer):
    identity_key = serializers.CharField()
    count = serializers.IntegerField(help_text="Unused one-time prekeys stored now.")
    device = DeviceSerializer(help_text="The new device, which this session is now bound to.")


# --- device linking (`/api/v1/devices/links`) -------------------------------------------------

# The box of PROTOCOL section 18 is 80 bytes today (33 bytes encrypted: 48, plus a 32-byte MAC);
# the bounds leave room for a later box version and refuse anything that is not a box.
LINK_BOX_MIN_BYTES = 48
LINK_BOX_MAX_BYTES = 512


class LinkIdSerializer(serializers.Serializer):
    link_id = serializers.CharField(
        max_length=24, trim_whitespace=False, help_text="The link's id: standard base64 of 16 bytes."
    )

    def validate_link_id(self, value: str) -> str:
        return _as_field_error(validation.decode_base64, value, length=16, what="link id")


class LinkBoxField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Standard base64 of the encrypted box (PROTOCOL section 18).")
        super().__init__(trim_whitespace=False, max_length=4 * LINK_BOX_MAX_BYTES // 3 + 4, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("The box is not valid standard base64.") from None
        if base64.b64encode(raw).decode("ascii") != value:
            raise serializers.ValidationError("The box is not in canonical base64 form.")
        if not LINK_BOX_MIN_BYTES <= len(raw) <= LINK_BOX_MAX_BYTES:
            raise serializers.ValidationError(f"A box has {LINK_BOX_MIN_BYTES} to {LINK_BOX_MAX_BYTES} bytes.")
        return value


class LinkOfferSerializer(LinkIdSerializer):
    ephemeral_key = X25519PublicKeyField(help_text="The existing device's ephemeral X25519 public key (base64).")
    ciphertext = LinkBoxField()


class LinkOfferOutSerializer(serializers.Serializer):
    ephemeral_key = serializers.CharField(source="offer_ephemeral_key")
    ciphertext = serializers.CharField(source="offer_ciphertext")


class LinkSerializer(serializers.Serializer):
    link_id = serializers.CharField()
    expires_at = serializers.DateTimeField()
    offer = serializers.SerializerMethodField(help_text="The existing device's answer; null until there is one.")

    def get_offer(self, link) -> dict | None:
        return None if link.offered_at is None else LinkOfferOutSerializer(link).data


class DeviceNewSerializer(LinkIdSerializer):
    """The new device's keys, like a registration's: signed by `identity_key`, which must be
    the account's."""

    device_name = DeviceNameField(required=False)
    identity_key = Ed25519PublicKeyField()
    signed_prekey = SignedPreKeySerializer()
    one_time_prekeys = OneTimePreKeyListField()

    def validate(self, attrs):
        verify_signed_prekey_signature(attrs["identity_key"], attrs["signed_prekey"])
        return attrs
