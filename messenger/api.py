"""One error shape for the whole JSON API.

Every error answer is `{"code": str, "detail": str}`, plus `"errors": {field: [messages]}`
for validation failures, so clients can show a reason and never have to parse HTML. The
views of every app document their error answers with `ERRORS` and `error_doc` below.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from messenger import validation
from messenger.errors import DomainError, RateLimited


class ErrorSerializer(serializers.Serializer):
    """The shape of every error answer of the API."""

    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Field errors, for validation failures (400).")


def error_doc(description: str) -> OpenApiResponse:
    """An error answer in the OpenAPI schema: the error shape, with what `description` says."""
    return OpenApiResponse(ErrorSerializer, description=description)


# The error answers most views share; a view with its own codes documents them with error_doc.
ERRORS = {
    400: error_doc("Invalid input, with field errors."),
    401: error_doc("Not signed in or invalid credentials."),
    403: error_doc("Missing or wrong CSRF token."),
    429: error_doc("Rate limited; see the Retry-After header."),
}


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (the API's only one), with the checks of messenger.validation that
    the chat socket applies to its frames: JSON too deep for the parser is a 400
    `nesting_too_deep` (DRF lets the RecursionError through: a 500), and a string anywhere in
    the body with a NUL or a lone surrogate is a 400 `invalid_string` before any view or
    serializer sees it (such a string fails in the database driver and the password hasher)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise validation.nesting_too_deep() from None
        validation.json_check(document)
        return document


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        body = {"code": exc.code, "detail": exc.detail, **exc.fields()}
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        # Raised by `request.body` (DRF's JSON parser reads through it) when Content-Length
        # exceeds DATA_UPLOAD_MAX_MEMORY_SIZE, before any parsing; Django alone answers an
        # HTML 400.
        detail = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        too_large = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        return Response({"code": "request_too_large", "detail": detail}, status=too_large)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "detail": "Invalid input.", "errors": _as_field_errors(exc.detail)}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = {"code": code, "detail": str(detail)}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and isinstance(exc, exceptions.Throttled):
        response.data["code"] = "rate_limited"
    return response


def _as_field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    return {"non_field_errors": _flatten(detail)}


def _flatten(value):
    if isinstance(value, dict):
        return {key: _flatten(v) for key, v in value.items()}
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        return [_flatten(v) for v in value]
    return [str(value)]


def not_found(request, exception=None):
    """404 for URLs that match no route: JSON under /api/ (clients parse every answer there),
    Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "No such API route."}, status=404)
    return page_not_found(request, exception)
