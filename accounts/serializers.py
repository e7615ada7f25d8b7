from django.contrib.auth import password_validation
from rest_framework import serializers

from accounts.devices import device_name_clean
from accounts.models import (
    DEVICE_NAME_MAX_LENGTH,
    MAX_DEVICE_ID,
    MIN_DEVICE_ID,
    User,
    email_for_new_account,
    normalize_email,
)


# The account fields of a registration and their rules; keys.serializers.RegisterSerializer
# adds the device keys. (No docstring: drf-spectacular would publish it, as the description of
# the subclass, in the API schema.)
class NewAccountSerializer(serializers.Serializer):
    email = serializers.EmailField(
        max_length=254,
        help_text=(
            "ASCII only (an internationalised domain in its xn-- punycode form), so that no two "
            "accounts can look alike; compared case-insensitively."
        ),
    )
    password = serializers.CharField(max_length=1024, trim_whitespace=False, write_only=True)

    def validate_email(self, value: str) -> str:
        try:
            return email_for_new_account(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs):
        try:
            password_validation.validate_password(attrs["password"], user=User(email=attrs["email"]))
        except Exception as exc:  # django.core.exceptions.ValidationError
            raise serializers.ValidationError({"password": list(getattr(exc, "messages", [str(exc)]))}) from None
        return attrs


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=1024, trim_whitespace=False, write_only=True)
    device_id = serializers.IntegerField(
        min_value=MIN_DEVICE_ID,
        max_value=MAX_DEVICE_ID,
        required=False,
        allow_null=True,
        help_text=(
            "The device this client is (its stored id); null for none. Absent (version-1 clients): "
            "the account's only device if it has exactly one. A removed or unknown id gives a "
            "pending session (`device: null`)."
        ),
    )

    def validate_email(self, value: str) -> str:
        # Looked up as every email is (accounts.models.normalize_email); no ASCII rule here, so
        # accounts made before it keep signing in, and no new account can match a non-ASCII one.
        return normalize_email(value)


class DeviceSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="device_id")
    name = serializers.CharField()


class UserSerializer(serializers.ModelSerializer):
    """The account, and the device this session is bound to (`null`: a pending session,
    docs/PROTOCOL.md section 15), given in the context as `device`."""

    device = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "date_joined", "device"]
        read_only_fields = fields

    def get_device(self, user) -> dict | None:
        device = self.context.get("device")
        return None if device is None else DeviceSerializer(device).data


class DeviceNameField(serializers.CharField):
    """A device name (accounts.devices.device_name_clean: 1 to 64 characters, no control or
    invisible characters)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", DEVICE_NAME_MAX_LENGTH)
        kwargs.setdefault("help_text", '1 to 64 characters, no control characters, e.g. "Laptop (Firefox)".')
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return device_name_clean(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class DeviceNameSerializer(serializers.Serializer):
    name = DeviceNameField()


class DeviceInfoSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(allow_null=True)
    current = serializers.BooleanField(help_text="The device of this session.")


class DeviceListSerializer(serializers.Serializer):
    devices = DeviceInfoSerializer(many=True, help_text="Active devices, ascending id.")
    max = serializers.IntegerField(help_text="DEVICES_PER_ACCOUNT_MAX: the most active devices an account may have.")


class CsrfSerializer(serializers.Serializer):
    csrf_token = serializers.CharField(help_text="Echo it in the X-CSRFToken header of unsafe requests.")
