"""The base of every domain error.

Services raise subclasses of `DomainError` (each app has its own base class in its
`errors.py`); `messenger.api.exception_handler` turns them into HTTP answers and the chat
consumer into `error` frames, so the mapping lives in one place and services never know
about HTTP.
"""


class DomainError(Exception):
    status_code = 400
    code = "invalid"
    default_detail = "Invalid request."

    def fields(self) -> dict:
        """What the answer carries besides `code` and `detail` (none by default)."""
        return {}

    def __init__(self, detail: str | None = None, *, code: str | None = None):
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        super().__init__(self.detail)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_detail = "Conflict."


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many requests; try again later."

    def __init__(self, retry_after: int, detail: str | None = None):
        self.retry_after = max(1, int(retry_after))
        super().__init__(detail or f"Too many requests; try again in {self.retry_after} s.")
