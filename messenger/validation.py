"""Checks every client value passes before it can reach the database, shared by the REST
parser and serializers and by the chat socket's frames, so both paths refuse the same input
with the same codes.

Why each check exists (each of these turned one user's request into a server error; the
first two, on the socket path, also failed every other request of the same batch until the
batcher learned to redo a failed batch request by request):

- Ids are row ids of signed 64-bit columns (Django's BigAutoField is a signed BIGINT on
  MariaDB; SQLite's INTEGER is a signed 64-bit integer), and JSON has no integer bound. An
  id past 2**63 - 1 makes SQLite's driver raise OverflowError while binding it; MariaDB
  compares it as a DECIMAL, and refuses it as out of range where it is stored. Ids start at
  1, so 0 and negative ids are refused too, and so are bools (`true` is an int to Python)
  and floats. Narrower ids (prekey key ids) keep their own, narrower bounds.
- Text must be encodable as UTF-8. JSON's `\\ud800` escape yields a lone UTF-16 surrogate,
  which no UTF-8 encoder accepts: SQLite's driver and MariaDB's (mysqlclient, utf8mb4)
  raise UnicodeEncodeError while binding the parameter, and so does the password hasher.
  NUL is refused as well: DRF's CharField always refused it on the REST path, C-string
  tools and log lines cut at it, and the socket path must refuse what the REST path refuses.
- JSON nested deeper than Python's parser can go (about a thousand arrays or objects within
  each other) makes it raise RecursionError, not the ValueError of malformed JSON: it is
  answered `nesting_too_deep` instead of failing as a server error.

The checks are plain functions that raise `InvalidInput`, a DomainError, so the REST
exception handler answers 400 `{"code", "detail"}` and the consumer an `error` frame.
"""

from messenger.errors import DomainError

MAX_DATABASE_ID = 2**63 - 1  # the largest value of a signed BIGINT column

INVALID_STRING = "invalid_string"
NESTING_TOO_DEEP = "nesting_too_deep"


class InvalidInput(DomainError):
    code = "invalid"
    default_detail = "Invalid input."


def is_database_id(value: object) -> bool:
    """True for an int (not a bool) from 1 to MAX_DATABASE_ID."""
    return type(value) is int and 0 < value <= MAX_DATABASE_ID


def is_clean_text(value: str) -> bool:
    """True when `value` has no NUL and no lone surrogate (so it encodes as UTF-8)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_check(document: object, text: str | None = None) -> None:
    """Every string of a parsed JSON document (object keys included) is clean text, else
    InvalidInput `invalid_string`. Iterative, so that a deep document cannot make the walk
    itself recurse.

    Given the `text` the document was parsed from, the walk is skipped when the text shows
    that it cannot find anything, as for nearly every socket frame (the walk would cost more
    than parsing them): in ASCII JSON without a backslash every string is made of printable
    ASCII (the parser refuses raw control characters), so only a `\\u` escape or raw
    non-ASCII text can yield a NUL or a lone surrogate."""
    if text is not None and text.isascii() and "\\" not in text:
        return
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not is_clean_text(value):
                raise InvalidInput(
                    "Strings must not contain NUL characters or unpaired UTF-16 surrogates.", code=INVALID_STRING
                )
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def nesting_too_deep() -> InvalidInput:
    """The answer to a document that made the JSON parser raise RecursionError (callers
    catch it around their `json.loads`: it is not a ValueError)."""
    return InvalidInput("JSON nests arrays and objects too deeply to be parsed.", code=NESTING_TOO_DEEP)
