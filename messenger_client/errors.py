"""Errors of the client, each with a message fit to show a person."""

from __future__ import annotations


class ClientError(Exception):
    """Base class of every error this package raises on purpose."""


class ApiError(ClientError):
    """The server refused a request: HTTP status, the API's error ``code`` and ``detail``."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: dict | None = None,
        retry_after: int | None = None,
        body: dict | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or {}
        self.retry_after = retry_after
        self.body = body or {}  # the whole error answer (a device_mismatch names the devices in it)
        message = f"{detail} ({code}, HTTP {status})" if status else f"{detail} ({code})"
        if self.errors:
            fields = "; ".join(
                f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for name, msgs in self.errors.items()
            )
            message += f" [{fields}]"
        if retry_after is not None:
            message += f"; retry after {retry_after} s"
        super().__init__(message)


class NotSignedIn(ClientError):
    """No valid session with the server: sign in (again)."""


class NotSetUp(ClientError):
    """This state file holds no keys for the account (register, or log in with new_device=True)."""


class DeviceRemoved(NotSetUp):
    """This device was unlinked from the account (docs/PROTOCOL.md section 19): the server refuses it
    for good, so its keys and sessions were erased from the state file (account.py). Nothing retries:
    starting over (``login(..., new_device=True)``, the CLI's ``login --new-device``) makes a new
    identity and a new device, and contacts are warned of the new safety number."""

    def __init__(self) -> None:
        super().__init__(
            "this device was unlinked from the account: its keys and sessions were erased from the state file. "
            "Link it again from another device (`link EMAIL`), or run `login --new-device` to start over with a "
            "new identity (your contacts will be warned)."
        )


class IdentityChanged(ClientError):
    """The contact's identity key changed: compare the new safety number, then accept it."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        super().__init__(
            f"The safety number with {peer} changed. Compare it (safety-number {peer}) and accept it "
            f"(trust {peer}) before sending."
        )


class TooManyConnections(ClientError):
    """The server refused the socket (close code 4429): the account already has as many open
    connections as the server allows (other programs, browser tabs or devices)."""

    def __init__(self) -> None:
        super().__init__(
            "the server refused the connection: too many connections are open for this account "
            "(other clients, browser tabs or devices); close one and try again"
        )


class GroupNameNotSent(ClientError):
    """A group was created (or a member added) on the server, but its name could not be sent to the
    members afterwards: the group exists (``group``), and ``rename`` sends the name again."""

    def __init__(self, group, done: str, error: Exception) -> None:
        self.group = group
        self.error = error
        super().__init__(f"the group {group.id} {done}, but its name was not sent yet ({error}); send it with rename")
