"""The groups API (`/api/v1/groups/`): the caller's groups, creating one, adding, removing and
promoting members, leaving, and the membership changes of a group.

Group ids and emails travel in JSON bodies, never in paths (paths are written to access logs,
and who is in which group is what this API is careful about). Every view needs a session bound
to a device (the default permission) and, for unsafe methods, the CSRF header.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from groups import selectors, services
from groups.errors import GroupNotFound
from groups.models import Group
from groups.serializers import (
    ChangesSerializer,
    GroupChangesQuerySerializer,
    GroupCreateSerializer,
    GroupListSerializer,
    GroupMemberSerializer,
    GroupRefSerializer,
    GroupSerializer,
)
from messenger.api import ERRORS, error_doc

NOT_FOUND = error_doc("`group_not_found`: you are not a member of a group with this id.")


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _as_seen_by(user, group: Group) -> dict:
    [view] = selectors.groups_of(user_id=user.pk, uids=[group.uid])
    return GroupSerializer(view).data


class GroupListView(APIView):
    @extend_schema(responses={200: GroupListSerializer, 401: ERRORS[401], 403: ERRORS[403]})
    def get(self, request):
        groups = selectors.groups_of(user_id=request.user.pk)
        return Response(GroupListSerializer({"groups": groups, "members_max": settings.GROUP_MEMBERS_MAX}).data)

    @extend_schema(
        request=GroupCreateSerializer,
        description="Create a group of you (its admin) and some of your accepted contacts.",
        responses={
            201: GroupSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: error_doc("`not_a_contact`: a listed email is not an accepted contact of yours."),
            409: error_doc("`group_full` or `too_many_groups` (yours or a member's)."),
            429: ERRORS[429],
        },
    )
    def post(self, request):
        data = _valid(GroupCreateSerializer, request)
        group = services.group_create(creator=request.user, emails=data["members"])
        return Response(_as_seen_by(request.user, group), status=status.HTTP_201_CREATED)


class GroupMembersView(APIView):
    @extend_schema(
        request=GroupMemberSerializer,
        description="Add one of your accepted contacts to a group you are a member of.",
        responses={
            200: GroupSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: error_doc("`not_a_contact`: the email is not an accepted contact of yours."),
            404: NOT_FOUND,
            409: error_doc("`already_member`, `group_full` or `too_many_groups`."),
            429: ERRORS[429],
        },
    )
    def post(self, request):
        data = _valid(GroupMemberSerializer, request)
        group = services.member_add(actor=request.user, uid=data["group"], email=data["email"])
        return Response(_as_seen_by(request.user, group))


class GroupRemoveView(APIView):
    @extend_schema(
        request=GroupMemberSerializer,
        description="Remove a member (admins only); naming yourself leaves the group.",
        responses={
            204: None,
            400: ERRORS[400],
            401: ERRORS[401],
            403: error_doc("`admin_required`."),
            404: error_doc("`group_not_found` or `member_not_found`."),
        },
    )
    def post(self, request):
        data = _valid(GroupMemberSerializer, request)
        services.member_remove(actor=request.user, uid=data["group"], email=data["email"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupLeaveView(APIView):
    @extend_schema(
        request=GroupRefSerializer,
        description="Leave a group. The last admin's role goes to the earliest member; the last member's "
        "departure deletes the group.",
        responses={204: None, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: NOT_FOUND},
    )
    def post(self, request):
        data = _valid(GroupRefSerializer, request)
        services.group_leave(user=request.user, uid=data["group"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupAdminsView(APIView):
    @extend_schema(
        request=GroupMemberSerializer,
        description="Make a member an admin (admins only).",
        responses={
            200: GroupSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: error_doc("`admin_required`."),
            404: error_doc("`group_not_found` or `member_not_found`."),
        },
    )
    def post(self, request):
        data = _valid(GroupMemberSerializer, request)
        group = services.admin_grant(actor=request.user, uid=data["group"], email=data["email"])
        return Response(_as_seen_by(request.user, group))


class GroupChangesView(APIView):
    @extend_schema(
        request=GroupChangesQuerySerializer,
        description="The group's membership changes after change id `after`, oldest first (at most 500): "
        "what a client that was offline shows as lines in the conversation. A POST so the group id "
        "stays out of the path.",
        responses={200: ChangesSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: NOT_FOUND},
    )
    def post(self, request):
        data = _valid(GroupChangesQuerySerializer, request)
        group = selectors.group_for_member(user_id=request.user.pk, uid=data["group"])
        if group is None:
            raise GroupNotFound()
        changes = selectors.changes_of(group=group, after=data["after"])
        return Response(ChangesSerializer({"changes": changes}).data)
