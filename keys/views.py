"""The keys API (`/api/v1/keys/`): a directory of public keys; and registration
(`/api/v1/auth/register`, routed by messenger.urls), which creates an account with its keys.

The server hands out keys it cannot use: every private half stays in the browser. Its part
of the protocol's security is who may fetch what (accepted contacts only), handing each
one-time prekey out once, and refusing keys that are malformed, of low order or not signed
by the identity key.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import CsrfOnlyAuthentication
from accounts.cookies import set_auth_cookies
from accounts.devices import device_rename, devices_list
from accounts.serializers import DeviceListSerializer, DeviceNameSerializer, DeviceSerializer, UserSerializer
from keys import links, selectors, services
from keys.errors import ContactNotFound
from keys.serializers import (
    BundlesRequestSerializer,
    DeviceBundlesSerializer,
    DeviceIdsSerializer,
    DeviceNewSerializer,
    IdentityKeySerializer,
    IdentityResetResultSerializer,
    IdentityResetSerializer,
    KeyOwnerSerializer,
    LinkIdSerializer,
    LinkOfferSerializer,
    LinkSerializer,
    PreKeyBundleSerializer,
    PreKeyCountSerializer,
    PreKeyStatusSerializer,
    PreKeyUploadSerializer,
    RegisterSerializer,
    SignedPreKeySerializer,
    SignedPreKeyStatusSerializer,
)
from messenger.api import ERRORS, error_doc
from messenger.ratelimit import client_address

NOT_A_CONTACT = error_doc("`not_found`: unknown email, or not a contact (the same answer for both).")
NOT_A_LINK = error_doc("`not_found`: no open link of your account has this id (expired, used, cancelled or unknown).")
NOT_A_DEVICE = error_doc("`not_found`: not an active device of your account (the same answer for every other case).")
NO_DEVICE_KEYS = "`no_device_keys`: the account has no identity key yet"


class RegisterView(APIView):
    """Create an account with its public device keys. Private keys never reach the server."""

    authentication_classes = [CsrfOnlyAuthentication]
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=RegisterSerializer,
        description=(
            "The email must be plain ASCII: an internationalised domain is written in its xn-- "
            "(punycode) form. Unicode has letters that look like ASCII ones (Cyrillic a, Greek o, "
            "fullwidth forms), so without this rule an account could pass for another "
            "(alice@ex\u0430mple.org next to alice@example.org). Emails are compared trimmed and "
            "case-insensitively, at sign-in too. `email_taken` (400) when the address is in use."
        ),
        responses={201: UserSerializer, 400: ERRORS[400], 403: ERRORS[403], 429: ERRORS[429]},
        auth=[],
    )
    def post(self, request):
        # Counted before validation (so invalid attempts cost too); the body may be any JSON.
        email = request.data.get("email", "") if isinstance(request.data, dict) else ""
        services.registration_rate_limit(email=str(email), ip=client_address(request))
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, device = services.account_register(**serializer.validated_data)
        return Response(UserSerializer(user, context={"device": device}).data, status=status.HTTP_201_CREATED)


class BundleView(APIView):
    """A contact's prekey bundle, to start a session (X3DH)."""

    @extend_schema(
        request=KeyOwnerSerializer,
        description=(
            "Claims one of the contact's one-time prekeys (oldest first; each is handed out once). "
            "`one_time_prekey` is null when none is left. Accepted contacts only; rate limited per "
            "(requester, contact) pair. A POST with the email in the body: a claim is a write, and "
            "an email in the path would be written to every access log."
        ),
        responses={
            200: PreKeyBundleSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: NOT_A_CONTACT,
            429: ERRORS[429],
        },
    )
    def post(self, request):
        serializer = KeyOwnerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bundle = services.prekey_bundle_claim(requester=request.user, **serializer.validated_data)
        return Response(PreKeyBundleSerializer(bundle).data)


class BundlesView(APIView):
    """Prekey bundles of every device of a contact (or of your own other devices), to start a
    session with each (docs/PROTOCOL.md section 16)."""

    @extend_schema(
        request=BundlesRequestSerializer,
        description=(
            "Claims one one-time prekey of each active device (or of each listed one). A device without "
            "a current signed prekey, and a listed id that is not an active device, are left out. Your own "
            "email: your other devices (this one left out). Accepted contacts only; rate limited per "
            "(requester, owner) pair, one hit per request."
        ),
        responses={
            200: DeviceBundlesSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: NOT_A_CONTACT,
            429: ERRORS[429],
        },
    )
    def post(self, request):
        serializer = BundlesRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bundles = services.prekey_bundles_claim(
            requester=request.user, requester_device_id=request.user.device_id, **serializer.validated_data
        )
        return Response(DeviceBundlesSerializer(bundles).data)


class DeviceIdsView(APIView):
    """The identity key and active device ids of a contact or of your own account; claims
    nothing."""

    @extend_schema(
        request=KeyOwnerSerializer,
        responses={200: DeviceIdsSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: NOT_A_CONTACT},
    )
    def post(self, request):
        serializer = KeyOwnerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            DeviceIdsSerializer(services.device_ids_of(requester=request.user, **serializer.validated_data)).data
        )


class IdentityLookupView(APIView):
    """The identity key of a contact or of a user with a pending request to or from you."""

    @extend_schema(
        request=KeyOwnerSerializer,
        description="A POST with the email in the body, so that no access log records whom you looked up.",
        responses={
            200: IdentityKeySerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: NOT_A_CONTACT,
        },
    )
    def post(self, request):
        serializer = KeyOwnerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity_key = selectors.identity_key_for(viewer_id=request.user.id, **serializer.validated_data)
        if identity_key is None:
            raise ContactNotFound()
        return Response(IdentityKeySerializer({"identity_key": identity_key}).data)


class IdentityView(APIView):
    """Start over: a new identity key and a new device replace every device of the account
    (docs/PROTOCOL.md section 15). A pending session may call it: it is how a user who lost
    every device gets one again."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=IdentityResetSerializer,
        description=(
            "Needs the account password. Every other device is removed with its keys; contacts and pending "
            "counterparties receive an `identity_changed` event. Every session of the account is revoked "
            "and its sockets closed; the caller gets fresh auth cookies bound to the new device (`device` "
            "in the answer). Rate limited."
        ),
        responses={
            200: IdentityResetResultSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: error_doc("Missing CSRF token, or `wrong_password`."),
            429: ERRORS[429],
        },
    )
    def put(self, request):
        serializer = IdentityResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reset = services.identity_reset(user=request.user, **serializer.validated_data)
        result = {
            "identity_key": serializer.validated_data["identity_key"],
            "count": reset.count,
            "device": reset.device,
        }
        response = Response(IdentityResetResultSerializer(result).data)
        set_auth_cookies(response, reset.tokens)
        return response


class PreKeyCountView(APIView):
    """How many one-time prekeys are left, and how old the signed prekey is."""

    @extend_schema(responses={200: PreKeyStatusSerializer, 401: ERRORS[401]})
    def get(self, request):
        status_ = selectors.prekey_status(user_id=request.user.id, device_id=request.user.device_id)
        return Response(PreKeyStatusSerializer(status_).data)


class PreKeyUploadView(APIView):
    """Upload more one-time prekeys."""

    @extend_schema(
        request=PreKeyUploadSerializer,
        responses={
            201: PreKeyCountSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            409: error_doc(
                "`key_id_reused`: an id is already on record (the whole upload is refused); "
                f"`too_many_prekeys`: the upload would exceed the cap on unused keys; {NO_DEVICE_KEYS}."
            ),
        },
    )
    def post(self, request):
        serializer = PreKeyUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        count = services.one_time_prekeys_add(
            user=request.user, device_id=request.user.device_id, **serializer.validated_data
        )
        return Response(PreKeyCountSerializer({"count": count}).data, status=status.HTTP_201_CREATED)


class SignedPreKeyView(APIView):
    """Rotate the signed prekey."""

    @extend_schema(
        request=SignedPreKeySerializer,
        description=(
            "The signature must verify under the account's identity key. The previous signed prekey "
            "is retired (kept for SIGNED_PREKEY_GRACE_DAYS, then deleted)."
        ),
        responses={
            200: SignedPreKeyStatusSerializer,
            400: error_doc("Invalid input, or `invalid_key`: the signature does not verify."),
            401: ERRORS[401],
            403: ERRORS[403],
            409: error_doc(f"`key_id_reused`: this signed prekey id is already on record; {NO_DEVICE_KEYS}."),
        },
    )
    def put(self, request):
        serializer = SignedPreKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        signed = services.signed_prekey_rotate(
            user=request.user, device_id=request.user.device_id, **serializer.validated_data
        )
        return Response(SignedPreKeyStatusSerializer(signed).data)


# --- devices (`/api/v1/devices`) -------------------------------------------------------------


class DeviceListView(APIView):
    """The account's active devices (GET; a pending session may look, to see what it would
    join), and a new one at the end of a link (POST)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: DeviceListSerializer, 401: ERRORS[401]})
    def get(self, request):
        devices = devices_list(user_id=request.user.id, current_device_id=request.user.device_id)
        return Response(DeviceListSerializer({"devices": devices, "max": settings.DEVICES_PER_ACCOUNT_MAX}).data)

    @extend_schema(
        request=DeviceNewSerializer,
        description=(
            "The last step of linking (docs/PROTOCOL.md section 18): the link must have been answered by a "
            "device of the account, and the keys signed by the account's identity key. The session is "
            "bound to the new device (fresh cookies); the account's sockets and its contacts receive "
            "`devices_changed`."
        ),
        responses={
            201: UserSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: NOT_A_LINK,
            409: error_doc("`link_not_offered`, `identity_key_mismatch`, `too_many_devices`, `key_id_reused`."),
        },
    )
    def post(self, request):
        serializer = DeviceNewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        linked = services.device_link_complete(user=request.user, **serializer.validated_data)
        response = Response(
            UserSerializer(request.user, context={"device": linked.device}).data, status=status.HTTP_201_CREATED
        )
        set_auth_cookies(response, linked.tokens)
        return response


class DeviceView(APIView):
    """Rename or unlink one device of the account."""

    @extend_schema(
        request=DeviceNameSerializer,
        responses={200: DeviceSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: NOT_A_DEVICE},
    )
    def patch(self, request, device_id: int):
        serializer = DeviceNameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device = device_rename(user_id=request.user.id, device_id=device_id, **serializer.validated_data)
        return Response(DeviceSerializer(device).data)

    @extend_schema(
        request=None,
        description=(
            "The device's keys are deleted, its sessions end and its sockets close (4403); your own device "
            "may be unlinked too. The account's sockets and its contacts receive `devices_changed`."
        ),
        responses={204: None, 401: ERRORS[401], 403: ERRORS[403], 404: NOT_A_DEVICE},
    )
    def delete(self, request, device_id: int):
        services.device_unlink(user=request.user, device_id=device_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- device linking (`/api/v1/devices/links`, PROTOCOL section 18) ---------------------------
# The link id travels in JSON bodies, never in a path: paths are written to access logs, and
# standard base64 may contain "/".


class LinkOpenView(APIView):
    """Open a link (the new device, usually in a pending session)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=None,
        description="A link lives 10 minutes; at most 3 are open per account (409 `too_many_links`).",
        responses={201: LinkSerializer, 401: ERRORS[401], 403: ERRORS[403], 409: error_doc("`too_many_links`.")},
    )
    def post(self, request):
        link = links.link_open(user=request.user)
        return Response(LinkSerializer(link).data, status=status.HTTP_201_CREATED)


class LinkPollView(APIView):
    """Read a link of your account, with the existing device's answer once there is one."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=LinkIdSerializer,
        responses={200: LinkSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: NOT_A_LINK},
    )
    def post(self, request):
        serializer = LinkIdSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        link = links.link_of(user_id=request.user.id, **serializer.validated_data)
        return Response(LinkSerializer(link).data)


class LinkOfferView(APIView):
    """Answer a link of your account from one of its devices (a pending session cannot)."""

    @extend_schema(
        request=LinkOfferSerializer,
        description="One answer per link: a second one is 409 `link_already_offered`.",
        responses={
            204: None,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: NOT_A_LINK,
            409: error_doc("`link_already_offered`: another device answered this link first."),
        },
    )
    def post(self, request):
        serializer = LinkOfferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        links.link_offer(user_id=request.user.id, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LinkCancelView(APIView):
    """Cancel a link of your account (either device may)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=LinkIdSerializer,
        responses={204: None, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 404: NOT_A_LINK},
    )
    def post(self, request):
        serializer = LinkIdSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        links.link_cancel(user_id=request.user.id, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
