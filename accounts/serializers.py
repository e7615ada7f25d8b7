from django.contrib.auth import password_validation
from rest_framework import serializers

from accounts.models import User, email_for_new_account, normalize_email


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

    def validate_email(self, value: str) -> str:
        # Looked up as every email is (accounts.models.normalize_email); no ASCII rule here, so
        # accounts made before it keep signing in, and no new account can match a non-ASCII one.
        return normalize_email(value)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "date_joined"]
        read_only_fields = fields


class CsrfSerializer(serializers.Serializer):
    csrf_token = serializers.CharField(help_text="Echo it in the X-CSRFToken header of unsafe requests.")
