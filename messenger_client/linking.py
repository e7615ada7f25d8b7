"""Linking a device (docs/PROTOCOL.md section 18), both roles: the REST calls around the
cryptography of protocol/link.py.

New device (this state file has no keys; its sign-in is pending)::

    link = await linking.open()                  # show link.code
    opening = await linking.wait_for_offer(link) # show opening.verification_code, ask the user
    await linking.complete(link, opening)        # only once the user confirmed both codes match

Existing device::

    offer = await linking.offer(code)            # show offer.verification_code
    await linking.wait_until_closed(link_id)     # the new device used (or cancelled) the link

- The seed is opened only after the user confirmed the codes (``complete``): the server relays
  both ephemeral keys and could otherwise swap in its own. Declining discards the box unopened.
- The opened seed must give the account's identity key (the account's key as the server reports
  it, and the server checks it again at ``POST devices``): a box from another account's device is
  abandoned, with the link cancelled.
- The new keys are kept only once the server accepted the device, in one transaction with its
  number; from then on the state file is an ordinary device of the account.
- The seed and the ephemeral private key are never printed, logged or stored outside the sealed
  account (``LinkRequest`` and ``NewLink`` keep the private key out of their ``repr``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime

from .account import ONE_TIME_PREKEY_BATCH, Account, default_device_name
from .errors import ApiError, ClientError
from .http import HttpApi
from .protocol import (
    LinkOffer,
    LinkOpening,
    LinkRequest,
    ProtocolAccount,
    ProtocolError,
    b64decode,
    b64encode,
    create_link_request,
    open_link_offer,
    seal_identity_for_link,
)

LINK_POLL_SECONDS = 2.0  # how often both devices ask about the link (section 18)
LINK_LIFETIME_SECONDS = 600.0  # the server's; used when its answer carries no readable expiry


class LinkError(ClientError):
    """Linking stopped: the link expired or was cancelled, the codes were declined, the key differs..."""


@dataclass(frozen=True)
class NewLink:
    """The new device's open link: show ``code`` (``sm-link:1:...``) on this device."""

    link_id: str
    code: str
    expires: float  # time.monotonic() deadline
    request: LinkRequest = field(repr=False)


def _deadline(expires_at: object) -> float:
    """The link's expiry (the server's ISO 8601 time) as a monotonic deadline."""
    try:
        left = datetime.fromisoformat(str(expires_at).replace("Z", "+00:00")).timestamp() - time.time()
    except ValueError:
        left = LINK_LIFETIME_SECONDS
    return time.monotonic() + max(0.0, min(left, LINK_LIFETIME_SECONDS))


def _link_gone() -> LinkError:
    return LinkError("the link expired, was cancelled or was already used: start again with a new link")


class Linking:
    def __init__(self, http: HttpApi, account: Account) -> None:
        self._http = http
        self._account = account

    # -- the new device -----------------------------------------------------------------------------------

    async def open(self) -> NewLink:
        """Opens a link for this state file, which must hold no keys (signed in, pending)."""
        if self._account.has_keys:
            raise LinkError(f"this state file is already device {self._account.device_id} of {self._account.email}")
        try:
            answer = await self._http.call("POST", "devices/links")
        except ApiError as error:
            if error.code == "too_many_links":
                raise LinkError("the account already has 3 open links: wait 10 minutes or cancel one") from error
            raise
        link_id = answer.get("link_id") if isinstance(answer, dict) else None
        request = create_link_request(link_id)  # checks the link id (16 bytes of canonical base64)
        return NewLink(link_id, request.code, _deadline(answer.get("expires_at")), request)

    async def wait_for_offer(self, link: NewLink, *, poll: float = LINK_POLL_SECONDS) -> LinkOpening:
        """Asks every ``poll`` seconds until the existing device answered; the opening's
        ``verification_code`` is to be compared with the other screen before ``complete``."""
        while True:
            try:
                answer = await self._http.call("POST", "devices/links/poll", {"link_id": link.link_id})
            except ApiError as error:
                if error.status == 404:
                    raise _link_gone() from error
                raise
            offer = answer.get("offer") if isinstance(answer, dict) else None
            if isinstance(offer, dict):
                return open_link_offer(
                    link.request.ephemeral_private_key,
                    b64decode(link.link_id),
                    link.request.ephemeral_public_key,
                    b64decode(offer.get("ephemeral_key"), length=32, what="offer ephemeral key"),
                    b64decode(offer.get("ciphertext"), what="offer ciphertext"),
                )
            if time.monotonic() + poll > link.expires:
                raise LinkError("the link expired before another device answered it: start again")
            await asyncio.sleep(poll)

    async def complete(self, link: NewLink, opening: LinkOpening, *, device_name: str | None = None) -> int:
        """After the user confirmed the codes: opens the box, checks the seed is the account's, makes
        this device's keys and becomes a device of the account. Returns the new device number."""
        try:
            seed = await opening.open()
        except ProtocolError:  # a box that does not authenticate (or is malformed) aborts the link
            with contextlib.suppress(ApiError):
                await self.cancel(link.link_id)
            raise
        keys = ProtocolAccount.from_linked_seed(seed, one_time_prekeys=ONE_TIME_PREKEY_BATCH)
        await self._check_account_key(link, keys)
        body = {
            "link_id": link.link_id,
            "device_name": device_name or default_device_name(),
            **keys.registration_keys(),
        }
        try:
            answer = await self._http.call("POST", "devices", body)
        except ApiError as error:
            if error.status == 404:
                raise _link_gone() from error
            if error.code == "too_many_devices":
                raise LinkError("the account has as many devices as the server allows: unlink one first") from error
            if error.code == "identity_key_mismatch":
                raise self._key_mismatch() from error
            raise
        return self._account.became_device(keys, answer)

    async def _check_account_key(self, link: NewLink, keys: ProtocolAccount) -> None:
        """The seed's public key against the account's identity key (``POST keys/devices``). A pending
        sign-in may be refused that route (403 ``device_required``): the server's own check at
        ``POST devices`` (409 ``identity_key_mismatch``) then stands alone."""
        email = self._account.email
        try:
            answer = await self._http.call("POST", "keys/devices", {"email": email})
        except ApiError as error:
            if error.status == 403:
                return
            raise
        if not isinstance(answer, dict) or answer.get("identity_key") != b64encode(keys.identity_key):
            with contextlib.suppress(ApiError):
                await self.cancel(link.link_id)
            raise self._key_mismatch()

    @staticmethod
    def _key_mismatch() -> LinkError:
        return LinkError(
            "the other device sent an identity key that is not this account's (another account's device, or a "
            "bug): nothing was linked"
        )

    async def cancel(self, link_id: str) -> None:
        """Either device may cancel; a link already gone is fine."""
        try:
            await self._http.call("POST", "devices/links/cancel", {"link_id": link_id})
        except ApiError as error:
            if error.status != 404:
                raise

    # -- the existing device ------------------------------------------------------------------------------

    async def offer(self, code: str) -> LinkOffer:
        """Seals the account's identity seed for the new device whose link code (or its
        ``https://host/#link=CODE`` form) is ``code``, and sends it. Show ``verification_code``."""
        keys = self._account.require()
        offer = await seal_identity_for_link(keys.identity_seed, code)
        body = {
            "link_id": b64encode(offer.link_id),
            "ephemeral_key": b64encode(offer.ephemeral_key),
            "ciphertext": b64encode(offer.ciphertext),
        }
        try:
            await self._http.call("POST", "devices/links/offer", body)
        except ApiError as error:
            if error.status == 404:
                raise _link_gone() from error
            if error.code == "link_already_offered":
                raise LinkError("another device already answered this link") from error
            raise
        return offer

    async def wait_until_closed(self, link_id: str, *, poll: float = LINK_POLL_SECONDS) -> None:
        """Returns once the link is gone: the new device used it, or it was cancelled or expired."""
        while True:
            try:
                await self._http.call("POST", "devices/links/poll", {"link_id": link_id})
            except ApiError as error:
                if error.status == 404:
                    return
                raise
            await asyncio.sleep(poll)
