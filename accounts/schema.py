"""drf-spectacular description of the cookie authentication and its CSRF header."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class CookieJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.CookieJWTAuthentication"
    name = ["accessCookie", "csrfHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "cookie",
                "name": "access_token",
                "description": "Short-lived JWT set by login/refresh as an HttpOnly, SameSite=Strict cookie.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRFToken",
                "description": "Unsafe methods (POST, PUT, PATCH, DELETE) must echo the `csrftoken` cookie here.",
            },
        ]
