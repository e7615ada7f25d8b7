"""The OpenAPI schema at /api/v1/schema/ documents every JSON endpoint."""

import re

import pytest
import yaml
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db


def _api_routes(resolver=None, prefix="") -> list[str]:
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes += _api_routes(entry, pattern)
        elif isinstance(entry, URLPattern) and pattern.startswith("api/v1/") and "schema" not in pattern:
            routes.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", pattern).lstrip("^").rstrip("$"))
    return routes


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_every_api_route_is_in_the_schema(schema):
    routes = _api_routes()
    assert routes, "no API routes found"
    missing = [route for route in routes if route not in schema["paths"]]
    assert not missing, f"endpoints missing from the OpenAPI schema: {missing}"


# Operations that cannot fail for a client (no input, no authentication).
CANNOT_FAIL = {"GET /api/v1/auth/csrf"}


def test_every_operation_documents_its_error_answers(schema):
    undocumented = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = {int(code) for code in operation["responses"]}
            name = f"{method.upper()} {path}"
            if not codes & {400, 401, 403, 404, 409, 429} and name not in CANNOT_FAIL:
                undocumented.append(name)
    assert not undocumented, f"operations without any error response: {undocumented}"


def test_schema_describes_cookie_auth_and_csrf(schema):
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("in") == "cookie" for s in schemes.values())
    assert any(s.get("in") == "header" and s.get("name") == "X-CSRFToken" for s in schemes.values())


def test_no_api_route_takes_an_email_or_free_text_in_its_path():
    """Paths are written to daphne's access log and to every proxy's: a contact's email (who
    talks to whom) must travel in a JSON body. Only numeric ids may be path parameters."""
    free_text = []
    for route in _api_routes_with_converters():
        if re.search(r"<(?!int:)[^>]*>", route):
            free_text.append(route)
    assert not free_text, f"API routes with a non-numeric path parameter: {free_text}"


def _api_routes_with_converters(resolver=None, prefix="") -> list[str]:
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes += _api_routes_with_converters(entry, pattern)
        elif pattern.startswith("api/"):
            routes.append(pattern)
    return routes
