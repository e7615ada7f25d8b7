"""HTTP to the server's JSON API the way the browser does it: cookies, CSRF header, 401 -> refresh -> retry.

Uses the standard library (``urllib``) in a worker thread, so the package needs no HTTP dependency.
Cookies are kept by name and path (``access_token`` on ``/``, ``refresh_token`` on ``/api/v1/auth/``,
``csrftoken``) and exported/imported so the client can keep them (sealed) in its state file.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from .errors import ApiError, NotSignedIn

API = "/api/v1/"
TIMEOUT = 30


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class HttpApi:
    def __init__(self, server: str) -> None:
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"server must be an http(s) URL, not {server!r}")
        self.server = f"{parsed.scheme}://{parsed.netloc}"
        self.secure = parsed.scheme == "https"
        # name -> {"value", "path", "expires"}
        self.cookies: dict[str, dict[str, Any]] = {}
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._refresh_lock = asyncio.Lock()
        # Where the newest cookies are kept (the state file), shared with other processes of the same
        # account and device (a `chat` running while a `send` runs): see refresh().
        self.load_stored_cookies: Callable[[], dict | None] | None = None
        self.store_cookies: Callable[[], None] | None = None

    # -- cookies ------------------------------------------------------------------------------------------

    def export_cookies(self) -> dict:
        return {name: dict(cookie) for name, cookie in self.cookies.items()}

    def import_cookies(self, cookies: dict | None) -> None:
        self.cookies = {name: dict(cookie) for name, cookie in (cookies or {}).items()}

    def cookie_header(self, path: str) -> str:
        now = time.time()
        parts = []
        for name, cookie in self.cookies.items():
            if cookie.get("expires") and cookie["expires"] < now:
                continue
            if path.startswith(cookie.get("path") or "/"):
                parts.append(f"{name}={cookie['value']}")
        return "; ".join(parts)

    def _take_cookies(self, headers) -> None:
        for header in headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                max_age = morsel["max-age"]
                expired = max_age not in ("", None) and int(max_age) <= 0
                if expired or morsel.value == "":
                    self.cookies.pop(name, None)
                    continue
                expires = time.time() + int(max_age) if max_age not in ("", None) else None
                self.cookies[name] = {"value": morsel.value, "path": morsel["path"] or "/", "expires": expires}

    @property
    def signed_in(self) -> bool:
        return "access_token" in self.cookies or "refresh_token" in self.cookies

    # -- requests -----------------------------------------------------------------------------------------

    def _request_sync(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
        url = self.server + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) checked above
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        cookie = self.cookie_header(urllib.parse.urlsplit(url).path)
        if cookie:
            request.add_header("Cookie", cookie)
        if method not in ("GET", "HEAD", "OPTIONS") and "csrftoken" in self.cookies:
            request.add_header("X-CSRFToken", self.cookies["csrftoken"]["value"])
            # Django's CSRF check on https compares the Referer with the host.
            request.add_header("Referer", self.server + "/")
        request.add_header("Origin", self.server)
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                self._take_cookies(response.headers)
                raw = response.read()
                return response.status, _json(raw), dict(response.headers)
        except urllib.error.HTTPError as error:
            self._take_cookies(error.headers)
            raw = error.read()
            return error.code, _json(raw), dict(error.headers)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, "server_unreachable", f"cannot reach {self.server}: {reason}") from error

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
        return await asyncio.to_thread(self._request_sync, method, path, body)

    async def ensure_csrf(self) -> None:
        if "csrftoken" not in self.cookies:
            status, payload, headers = await self._request("GET", API + "auth/csrf")
            if status != 200:
                raise _error(status, payload, headers)

    async def call(self, method: str, endpoint: str, body: Any = None, *, auth: bool = True) -> Any:
        """One API call (``endpoint`` relative to /api/v1/); on 401 refreshes the tokens once and retries."""
        path = API + endpoint
        if method != "GET":
            await self.ensure_csrf()
        status, payload, headers = await self._request(method, path, body)
        if status == 403 and isinstance(payload, dict) and "CSRF" in str(payload.get("detail", "")):
            self.cookies.pop("csrftoken", None)
            await self.ensure_csrf()
            status, payload, headers = await self._request(method, path, body)
        if status == 401 and auth:
            await self.refresh()
            status, payload, headers = await self._request(method, path, body)
        if status >= 400:
            error = _error(status, payload, headers)
            if status == 401 and auth:
                raise NotSignedIn(f"not signed in: {error.detail} (log in again)") from error
            raise error
        return payload

    async def refresh(self) -> None:
        """Rotates the refresh token; NotSignedIn when it is missing, expired or revoked."""
        async with self._refresh_lock:
            # The server treats a rotated refresh token presented again as theft and revokes every session
            # of the account. Another process on the same state file may have rotated ours already: then
            # its newer cookies are used instead of refreshing with the old token.
            if self.load_stored_cookies is not None:
                stored = self.load_stored_cookies() or {}
                if _value(stored, "refresh_token") and _value(stored, "refresh_token") != _value(
                    self.cookies, "refresh_token"
                ):
                    self.import_cookies(stored)
                    return
            before = self.cookies.get("access_token")
            if "refresh_token" not in self.cookies:
                raise NotSignedIn("not signed in (log in first)")
            await self.ensure_csrf()
            status, payload, headers = await self._request("POST", API + "auth/refresh")
            if status != 200:
                if self.cookies.get("access_token") != before:  # another task refreshed meanwhile
                    return
                error = _error(status, payload, headers)
                raise NotSignedIn(f"not signed in: {error.detail} (log in again)") from error
            if self.store_cookies is not None:
                self.store_cookies()


def _value(cookies: dict, name: str) -> str | None:
    cookie = cookies.get(name)
    return cookie.get("value") if isinstance(cookie, dict) else None


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"detail": raw[:200].decode(errors="replace")}


def _error(status: int, payload: Any, headers: dict) -> ApiError:
    payload = payload if isinstance(payload, dict) else {}
    retry_after = headers.get("Retry-After")
    return ApiError(
        status,
        str(payload.get("code") or f"http_{status}"),
        str(payload.get("detail") or "request failed"),
        errors=payload.get("errors") if isinstance(payload.get("errors"), dict) else None,
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
    )
