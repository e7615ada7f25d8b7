from messenger.errors import Conflict, DomainError, NotFound


class GroupsError(DomainError):
    """Base class of the groups app's domain errors."""


class GroupNotFound(NotFound, GroupsError):
    """Also the answer to someone who is not a member: whether a group exists is nothing a
    non-member may learn."""

    code = "group_not_found"
    default_detail = "You are not a member of a group with this id."


class MemberNotFound(NotFound, GroupsError):
    code = "member_not_found"
    default_detail = "This account is not a member of the group."


class NotAContact(GroupsError):
    status_code = 403
    code = "not_a_contact"
    default_detail = "You can only add your accepted contacts."


class AdminRequired(GroupsError):
    status_code = 403
    code = "admin_required"
    default_detail = "Only an admin of the group can do this."


class AlreadyMember(Conflict, GroupsError):
    code = "already_member"
    default_detail = "This account is already a member of the group."


class GroupFull(Conflict, GroupsError):
    code = "group_full"
    default_detail = "The group has the largest number of members allowed."


class TooManyGroups(Conflict, GroupsError):
    code = "too_many_groups"
    default_detail = "This account is in the largest number of groups allowed."
