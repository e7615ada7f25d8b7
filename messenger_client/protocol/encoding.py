"""Strict, canonical standard base64 (RFC 4648 section 4, with padding), as in static/js/crypto/bytes.js.

One byte string has exactly one accepted text form, so keys can be compared and used as dictionary keys in
their base64 form.
"""

import base64
import binascii
import re

from .errors import ErrorCode, ProtocolError

_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(
    text: object,
    *,
    length: int | None = None,
    code: ErrorCode = ErrorCode.INVALID_ARGUMENT,
    what: str = "value",
) -> bytes:
    """Decodes canonical base64 or raises ProtocolError(code)."""
    if not isinstance(text, str) or _BASE64.fullmatch(text) is None:
        raise ProtocolError(code, f"{what} is not canonical base64")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ProtocolError(code, f"{what} is not canonical base64") from error
    if b64encode(data) != text:  # non-zero trailing bits
        raise ProtocolError(code, f"{what} is not canonical base64")
    if length is not None and len(data) != length:
        raise ProtocolError(code, f"{what} must be {length} bytes")
    return data
