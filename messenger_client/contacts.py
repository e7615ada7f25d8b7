"""Contacts and contact requests: the REST calls behind ``contacts`` in the CLI. Emails go in
JSON bodies, never in URLs (tests/client/test_access_log.py)."""

from __future__ import annotations

from .errors import ApiError
from .http import HttpApi


class Contacts:
    def __init__(self, http: HttpApi) -> None:
        self._http = http

    async def list(self) -> list[dict]:
        return await self._http.call("GET", "contacts/")

    async def requests(self) -> dict:
        return await self._http.call("GET", "contacts/requests")

    async def add(self, email: str) -> dict:
        """Sends a contact request (or accepts theirs if they had already asked)."""
        return await self._http.call("POST", "contacts/requests", {"email": email})

    async def answer(self, email: str, *, accept: bool = True) -> dict:
        requests = await self.requests()
        for request in requests.get("incoming", []):
            if request["email"].lower() == email.lower():
                action = "accept" if accept else "reject"
                return await self._http.call("PUT", f"contacts/requests/{request['id']}", {"action": action})
        raise ApiError(404, "request_not_found", f"no pending contact request from {email}")

    async def remove(self, email: str) -> None:
        await self._http.call("POST", "contacts/remove", {"email": email})
