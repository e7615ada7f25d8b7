"""REST half of the transport: the server's JSON API over httpx, the way the browser does it
(static/js/api.js): cookies, the CSRF header, 401 -> refresh -> retry once.

Owns the HTTP connection pool and the cookie jar (httpx's, an ``http.cookiejar``): the HttpOnly
``access_token`` (path ``/``) and ``refresh_token`` (path ``/api/v1/auth/``) and ``csrftoken``.
The jar is exported to and imported from the sealed state file in the form
``{name: {"value", "path", "expires"}}`` (what earlier versions stored), and it gives the socket
its ``Cookie`` header (transport.py).

What it keeps, as the urllib client before it did:
- TLS is verified against the system's trust store (``ssl.create_default_context()``, as urllib
  and the websockets library do), not httpx's bundled certifi list: a self-hosted server's
  private CA installed on the system keeps working for REST and the socket alike.
- Redirects are not followed: a 3xx is answered as it is (an API never redirects; following
  one could carry the cookies and the CSRF token to another place).
- One timeout of TIMEOUT seconds for connecting and for each read or write.
- The body is ``json.dumps(body)`` sent with a Content-Length, byte for byte what it was.
- Failures map to messenger_client.errors: ``ApiError(0, "server_unreachable")`` when the server
  cannot be reached (also a TLS failure or a timeout), ``ApiError(status, code, detail)`` from
  the API's error body, ``NotSignedIn`` when the session cannot be refreshed.
- A 401 ``device_removed`` (this device was unlinked, docs/PROTOCOL.md section 19) is final: no
  refresh, no retry; ``device_removed()`` drops the cookies, lets ``on_device_removed`` erase the
  keys (account.py) and gives ``DeviceRemoved`` to raise. The socket's 4403 with that reason ends
  the same way (transport.py).
- No secret in logs: httpcore's debug log prints response headers, which carry the session's
  cookies; ``HideCookies`` removes them (also from websockets' handshake log, transport.py).
"""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import json
import logging
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx

from .errors import ApiError, DeviceRemoved, NotSignedIn

API = "/api/v1/"
TIMEOUT = 30
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
COOKIE_HEADERS = ("cookie", "set-cookie")
DEVICE_REMOVED = "device_removed"  # the 401 code (and 4403 close reason) of an unlinked device


class HideCookies(logging.Filter):
    """Takes cookie values out of the header lines of httpcore's and websockets' debug logs
    (``receive_response_headers.complete return_value=(..., [(b'Set-Cookie', ...)])`` and
    ``> Cookie: ...``): they are the session's bearer tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in COOKIE_HEADERS:
            record.args = (args[0], "[hidden]")
        elif isinstance(record.msg, str) and "cookie" in record.msg.lower() and not args:
            head = record.msg.split(" return_value=", 1)[0]
            record.msg = f"{head} return_value=[headers hidden: they carry the session cookies]"
        return True


def hide_cookies_in(logger_name: str) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, HideCookies) for f in logger.filters):
        logger.addFilter(HideCookies())


hide_cookies_in("httpcore.http11")


class HttpApi:
    def __init__(
        self,
        server: str,
        *,
        load_cookies: Callable[[], dict | None] = lambda: None,
        save_cookies: Callable[[dict], None] = lambda cookies: None,
        on_device_removed: Callable[[], None] = lambda: None,
    ) -> None:
        """``load_cookies``/``save_cookies`` reach where the newest cookies are kept (the state file),
        shared with other processes of the same account and device (a `chat` running while a `send`
        runs): see refresh(). The cookies are saved after every call. ``on_device_removed`` runs when
        the server says this device was unlinked (see ``device_removed``)."""
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"server must be an http(s) URL, not {server!r}")
        self.server = f"{parsed.scheme}://{parsed.netloc}"
        self.secure = parsed.scheme == "https"
        # The domain http.cookiejar files a host-only cookie of this server under (httpx hands the jar a
        # urllib Request too; nothing is opened here).
        host_request = urllib.request.Request(self.server + "/")  # noqa: S310 - http(s) checked above
        self._cookie_domain = http.cookiejar.eff_request_host(host_request)[1]
        self._client = httpx.AsyncClient(
            base_url=self.server,
            verify=_tls_context(),
            timeout=TIMEOUT,
            follow_redirects=False,
            headers={"Accept": "application/json", "Origin": self.server},
        )
        self._refresh_lock = asyncio.Lock()
        self._load_cookies = load_cookies
        self._save_cookies = save_cookies
        self._on_device_removed = on_device_removed
        self.import_cookies(load_cookies())

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- cookies ------------------------------------------------------------------------------------------

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def export_cookies(self) -> dict:
        return {
            cookie.name: {"value": cookie.value, "path": cookie.path, "expires": cookie.expires}
            for cookie in self.cookies.jar
        }

    def import_cookies(self, cookies: dict | None) -> None:
        self.cookies.clear()
        for name, stored in (cookies or {}).items():
            expires = stored.get("expires")
            self.cookies.jar.set_cookie(
                http.cookiejar.Cookie(
                    version=0,
                    name=name,
                    value=stored["value"],
                    port=None,
                    port_specified=False,
                    domain=self._cookie_domain,
                    domain_specified=False,
                    domain_initial_dot=False,
                    path=stored.get("path") or "/",
                    path_specified=True,
                    secure=self.secure,
                    expires=int(expires) if expires else None,
                    discard=not expires,
                    comment=None,
                    comment_url=None,
                    rest={"HttpOnly": None},
                )
            )

    def save_cookies(self) -> None:
        self._save_cookies(self.export_cookies())

    def forget_cookies(self) -> None:
        """Signed out: nothing of the session is kept, here or in the state file."""
        self.cookies.clear()
        self.save_cookies()

    def device_removed(self) -> DeviceRemoved:
        """The server refused this device for good (a 401 ``device_removed``, or the socket closed with
        that reason): its session is dead, so the cookies go, and ``on_device_removed`` erases the keys
        and sessions. Returns the error for the caller to raise; nothing is retried (the server will
        refuse this device whatever it sends). Idempotent: concurrent calls that all hear it are fine."""
        self.forget_cookies()
        self._on_device_removed()
        return DeviceRemoved()

    def cookie_header(self, path: str) -> str:
        """The ``Cookie`` header the jar sends to ``path`` on this server (the socket's handshake)."""
        request = httpx.Request("GET", self.server + path)
        self.cookies.set_cookie_header(request)
        return request.headers.get("Cookie", "")

    @property
    def signed_in(self) -> bool:
        return "access_token" in self.cookies or "refresh_token" in self.cookies

    # -- requests -----------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, httpx.Headers]:
        headers = {}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        csrf = self.cookies.get("csrftoken")
        if method not in SAFE_METHODS and csrf is not None:
            headers["X-CSRFToken"] = csrf
            # Django's CSRF check on https compares the Referer with the host.
            headers["Referer"] = self.server + "/"
        try:
            response = await self._client.request(method, path, content=content, headers=headers)
        except (httpx.RequestError, OSError) as error:
            raise ApiError(0, "server_unreachable", f"cannot reach {self.server}: {_reason(error)}") from error
        return response.status_code, _json(response.content), response.headers

    async def ensure_csrf(self) -> None:
        if "csrftoken" not in self.cookies:
            status, payload, headers = await self._request("GET", API + "auth/csrf")
            if status != 200:
                raise _error(status, payload, headers)

    async def call(self, method: str, endpoint: str, body: Any = None, *, auth: bool = True) -> Any:
        """One API call (``endpoint`` relative to /api/v1/); on 401 refreshes the tokens once and retries."""
        try:
            return await self._call(method, API + endpoint, body, auth=auth)
        finally:
            self.save_cookies()

    async def _call(self, method: str, path: str, body: Any, *, auth: bool) -> Any:
        if method != "GET":
            await self.ensure_csrf()
        status, payload, headers = await self._request(method, path, body)
        if status == 403 and isinstance(payload, dict) and "CSRF" in str(payload.get("detail", "")):
            self.cookies.delete("csrftoken")
            await self.ensure_csrf()
            status, payload, headers = await self._request(method, path, body)
        if status == 401 and auth and not _is_device_removed(status, payload):
            await self.refresh()
            status, payload, headers = await self._request(method, path, body)
        if status >= 400:
            error = _error(status, payload, headers)
            if _is_device_removed(status, payload):
                raise self.device_removed() from error
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
            stored = self._load_cookies() or {}
            if _value(stored, "refresh_token") and _value(stored, "refresh_token") != self.cookies.get("refresh_token"):
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
            self.save_cookies()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's trust store, loaded once a process (read-only once made, so it is shared)."""
    return ssl.create_default_context()


def _reason(error: BaseException) -> str:
    """Why the server could not be reached, in urllib's words (what the CLI printed before): the
    innermost cause, ``[Errno 111] Connection refused`` rather than httpx's ``All connection
    attempts failed``, and ``timed out``."""
    innermost = error
    cause = error.__cause__ or error.__context__  # httpx and httpcore re-raise "from None"
    while cause is not None:
        if isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[-1]  # as socket.create_connection: the last attempt's error
        innermost, cause = cause, cause.__cause__ or cause.__context__
    if isinstance(error, httpx.TimeoutException) or isinstance(innermost, TimeoutError):
        return "timed out"
    if isinstance(innermost, OSError) and not isinstance(innermost, ssl.SSLError) and (innermost.errno or 0) > 0:
        return f"[Errno {innermost.errno}] {os.strerror(innermost.errno)}"
    return str(innermost) or str(error) or type(error).__name__


def _value(cookies: dict, name: str) -> str | None:
    cookie = cookies.get(name)
    return cookie.get("value") if isinstance(cookie, dict) else None


def _is_device_removed(status: int, payload: Any) -> bool:
    return status == 401 and isinstance(payload, dict) and payload.get("code") == DEVICE_REMOVED


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"detail": raw[:200].decode(errors="replace")}


def _error(status: int, payload: Any, headers: httpx.Headers) -> ApiError:
    payload = payload if isinstance(payload, dict) else {}
    retry_after = headers.get("Retry-After")
    return ApiError(
        status,
        str(payload.get("code") or f"http_{status}"),
        str(payload.get("detail") or "request failed"),
        errors=payload.get("errors") if isinstance(payload.get("errors"), dict) else None,
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
        body=payload,
    )
