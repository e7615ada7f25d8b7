"""Request and response shapes of the groups API."""

from rest_framework import serializers

from accounts.models import normalize_email


class _Email(serializers.EmailField):
    def to_internal_value(self, data):
        return normalize_email(super().to_internal_value(data))


class GroupCreateSerializer(serializers.Serializer):
    members = serializers.ListField(
        child=_Email(max_length=254),
        allow_empty=True,
        max_length=1024,
        help_text="Emails of accepted contacts of yours; you are the first member and admin.",
    )


class _GroupId(serializers.UUIDField):
    """A UUID in its text form only (DRF's field also takes an integer as a UUID's value)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class GroupRefSerializer(serializers.Serializer):
    group = _GroupId(help_text="The group's id.")


class GroupMemberSerializer(GroupRefSerializer):
    email = _Email(max_length=254)


class GroupChangesQuerySerializer(GroupRefSerializer):
    after = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0, help_text="The last change id seen.")


class MemberSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.CharField(help_text="`admin` or `member`.")
    joined_at = serializers.DateTimeField()
    devices = serializers.ListField(child=serializers.IntegerField(), help_text="Active device ids, ascending.")


class GroupSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The group's id (a UUID).")
    epoch = serializers.IntegerField(help_text="Grows with every change of who receives the group's messages.")
    role = serializers.CharField(help_text="Your role: `admin` or `member`.")
    created_at = serializers.DateTimeField()
    members = MemberSerializer(many=True)


class GroupListSerializer(serializers.Serializer):
    groups = GroupSerializer(many=True)
    members_max = serializers.IntegerField(help_text="GROUP_MEMBERS_MAX: the most members a group may have.")


class ChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    epoch = serializers.IntegerField()
    change = serializers.CharField(help_text="`created`, `added`, `removed`, `left` or `admin`.")
    actor = serializers.EmailField(allow_null=True, help_text="Who did it; null for an operator or the server.")
    members = serializers.ListField(child=serializers.EmailField(), help_text="Whom it is about.")
    at = serializers.DateTimeField()


class ChangesSerializer(serializers.Serializer):
    changes = ChangeSerializer(many=True)
