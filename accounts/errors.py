from messenger.errors import DomainError


class AccountsError(DomainError):
    """Base class of the accounts app's domain errors."""


class InvalidCredentials(AccountsError):
    status_code = 401
    code = "invalid_credentials"
    default_detail = "Invalid email or password."


class InvalidRefreshToken(AccountsError):
    status_code = 401
    code = "invalid_refresh_token"
    default_detail = "The session has expired or was revoked; sign in again."


class EmailTaken(AccountsError):
    status_code = 400
    code = "email_taken"
    default_detail = "An account with this email already exists."


class TooManyDevices(AccountsError):
    status_code = 409
    code = "too_many_devices"
    default_detail = "This account has as many devices as it may have; unlink one first."


class DeviceNotFound(AccountsError):
    """One answer for another account's device, a removed one and an unknown number."""

    status_code = 404
    code = "not_found"
    default_detail = "No such device."
