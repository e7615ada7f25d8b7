from messenger.errors import Conflict, DomainError, NotFound


class ContactsError(DomainError):
    """Base class of the contacts app's domain errors."""


class UserNotFound(NotFound, ContactsError):
    code = "user_not_found"
    default_detail = "No account has this email."


class SelfRequest(Conflict, ContactsError):
    code = "self_request"
    default_detail = "You cannot send a contact request to yourself."


class AlreadyRequested(Conflict, ContactsError):
    code = "already_requested"
    default_detail = "You already sent a contact request to this user."


class AlreadyContacts(Conflict, ContactsError):
    code = "already_contacts"
    default_detail = "This user is already one of your contacts."


class RequestNotFound(NotFound, ContactsError):
    code = "request_not_found"
    default_detail = "No contact request with this id is waiting for your answer."


class RequestNotPending(Conflict, ContactsError):
    code = "request_not_pending"
    default_detail = "This contact request was already answered."


class NotAContact(NotFound, ContactsError):
    code = "not_a_contact"
    default_detail = "This user is not one of your contacts."
