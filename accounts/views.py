"""The auth API (`/api/v1/auth/`) and the HTML pages that host the browser client.

Registration (`auth/register`) creates an account together with its device keys, so it is a
use case of the keys app: keys.views.RegisterView, routed by messenger.urls."""

from django.conf import settings
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import TemplateView
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.authentication import CsrfOnlyAuthentication
from accounts.cookies import clear_auth_cookies, set_auth_cookies
from accounts.devices import DEVICE_ID_ABSENT, device_active
from accounts.ratelimit import rate_limit_hit
from accounts.serializers import CsrfSerializer, LoginSerializer, UserSerializer
from messenger.api import ERRORS
from messenger.ratelimit import client_address


class CsrfView(APIView):
    """Sets the `csrftoken` cookie and returns its value (for clients that are not pages)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: CsrfSerializer}, auth=[])
    def get(self, request):
        return Response({"csrf_token": get_token(request)})


class LoginView(APIView):
    """Sign in: sets the access and refresh cookies. Throttled per address, per (address,
    account) and, for failures from addresses the account has not used, per account
    (accounts.backends)."""

    authentication_classes = [CsrfOnlyAuthentication]
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=LoginSerializer,
        responses={200: UserSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 429: ERRORS[429]},
        auth=[],
    )
    def post(self, request):
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = services.user_authenticate(email=data["email"], password=data["password"], request=request)
        device, tokens = services.session_login(user=user, device_id=data.get("device_id", DEVICE_ID_ABSENT))
        response = Response(UserSerializer(user, context={"device": device}).data)
        set_auth_cookies(response, tokens)
        return response


class RefreshView(APIView):
    """Rotate the refresh cookie and issue a new access cookie. Reuse of an old refresh
    token revokes every session of the account."""

    authentication_classes = [CsrfOnlyAuthentication]
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=None, responses={200: UserSerializer, 401: ERRORS[401], 403: ERRORS[403], 429: ERRORS[429]}, auth=[]
    )
    def post(self, request):
        rate_limit_hit("refresh_ip", client_address(request))
        raw = request.COOKIES.get(settings.AUTH_COOKIE_REFRESH, "")
        try:
            user, device, pair = services.tokens_rotate(refresh=raw)
        except services.InvalidRefreshToken:
            response = Response(
                {"code": "invalid_refresh_token", "detail": services.InvalidRefreshToken.default_detail},
                status=status.HTTP_401_UNAUTHORIZED,
            )
            clear_auth_cookies(response)
            return response
        response = Response(UserSerializer(user, context={"device": device}).data)
        set_auth_cookies(response, pair)
        return response


class LogoutView(APIView):
    """End this device's sessions (its access and refresh tokens are refused, its sockets
    closed; the account's other devices stay signed in), and clear both cookies."""

    authentication_classes = [CsrfOnlyAuthentication]
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=None, responses={204: None, 403: ERRORS[403]}, auth=[])
    def post(self, request):
        services.session_logout(refresh=request.COOKIES.get(settings.AUTH_COOKIE_REFRESH, ""))
        response = Response(status=status.HTTP_204_NO_CONTENT)
        clear_auth_cookies(response)
        return response


class MeView(APIView):
    """The signed-in user and this session's device (null: pending)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: UserSerializer, 401: ERRORS[401]})
    def get(self, request):
        device = device_active(user_id=request.user.pk, device_id=request.user.device_id)
        return Response(UserSerializer(request.user, context={"device": device}).data)


@method_decorator(ensure_csrf_cookie, name="dispatch")
class PageView(TemplateView):
    """An HTML page of the browser client; sets the CSRF cookie its scripts echo."""
