"""REST fallback of the chat socket (`/api/v1/messages/`), for clients without a socket and
for resync. Same services, same rules, same idempotency as the socket frames. A send takes
from the user's one send budget, the in-process bucket the socket's `send` frames use too
(realtime.ratelimit), and from the database bucket "message_send" shared by all processes."""

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.ratelimit import rate_limit_hit
from chat import group_messages, selectors, services
from chat.errors import InvalidFrame
from chat.serializers import (
    GroupReceiptsSerializer,
    GroupSendSerializer,
    IdsSerializer,
    PendingQuerySerializer,
    PendingSerializer,
    ReceiptSerializer,
    ReceiptsQuerySerializer,
    ReceiptsSerializer,
    SendCopiesSerializer,
    SendSerializer,
    SentSerializer,
)
from messenger.api import ERRORS, ErrorSerializer, error_doc
from realtime.ratelimit import local_rate_limit_hit

SEND_ERRORS = {
    400: ERRORS[400],
    401: ERRORS[401],
    403: OpenApiResponse(
        ErrorSerializer,
        description="CSRF failure, the recipient is not an accepted contact, or a storage quota on "
        "undelivered messages is full (`quota_exceeded`).",
    ),
    409: OpenApiResponse(
        ErrorSerializer,
        description="client_id already used for another recipient; `device_mismatch` (with `missing` and "
        "`extra`: the devices to add and to drop, of the recipient `to` and of your own account `own`); "
        "`no_devices`.",
    ),
    413: OpenApiResponse(ErrorSerializer, description="Body larger than MESSAGE_MAX_BODY_BYTES."),
    429: ERRORS[429],
}


class MessagesView(APIView):
    """Undelivered envelopes (GET) and sending one (POST)."""

    @extend_schema(
        parameters=[PendingQuerySerializer],
        responses={200: PendingSerializer, 400: ERRORS[400], 401: ERRORS[401]},
        description="Undelivered envelopes addressed to you, oldest first, a page at a time. "
        "They stay here until acknowledged with POST ack.",
    )
    def get(self, request):
        query = PendingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data["limit"]
        page = selectors.envelopes_pending(
            user_id=request.user.pk,
            device_id=request.user.device_id,
            after=query.validated_data["after"],
            limit=limit + 1,
        )
        return Response({"messages": page[:limit], "has_more": len(page) > limit})

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="MessageSend",
            serializers=[SendCopiesSerializer, SendSerializer],
            resource_type_field_name=None,
        ),
        responses={201: SentSerializer, 200: SentSerializer, **SEND_ERRORS},
        description="Store a message for an accepted contact: version 2, a copy per device of the "
        "recipient and per other device of yours (`copies`, `own`; stored all or none), or version 1, "
        "one `kind` and `body` (only while both accounts have one device). 201 when stored, 200 with "
        "the same id when this client_id was already sent (nothing is stored twice).",
    )
    def post(self, request):
        local_rate_limit_hit("message_send", request.user.pk)
        rate_limit_hit("message_send", str(request.user.pk))
        if isinstance(request.data, dict) and "copies" in request.data:
            send = services.send_request_parse(request.data, sender=request.user, sender_device=request.user.device_id)
        else:
            serializer = SendSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            send = services.SendRequest(
                request.user.pk,
                request.user.email,
                data["to"],
                data["client_id"],
                data["kind"],
                data["body"],
                request.user.device_id,
            )
        result = services.envelope_send(send)
        return Response(
            {"client_id": str(result.client_id), "id": result.id},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class AckView(APIView):
    """Mark envelopes delivered (their bodies are then erased from the server)."""

    @extend_schema(
        request=IdsSerializer,
        responses={200: ReceiptSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403]},
    )
    def post(self, request):
        serializer = IdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.envelopes_mark_delivered(
            user_id=request.user.pk, ids=serializer.validated_data["ids"], device_id=request.user.device_id
        )
        return Response({"ids": result.marked})


class ReadView(APIView):
    """Mark envelopes read (and delivered, if they were not yet)."""

    @extend_schema(
        request=IdsSerializer,
        responses={200: ReceiptSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403]},
    )
    def post(self, request):
        serializer = IdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.envelopes_mark_read(
            user_id=request.user.pk, ids=serializer.validated_data["ids"], device_id=request.user.device_id
        )
        return Response({"ids": result.marked})


class ReceiptsView(APIView):
    """Where envelopes you sent stand: the receipts a push may have missed."""

    @extend_schema(
        parameters=[ReceiptsQuerySerializer],
        responses={200: ReceiptsSerializer, 400: ERRORS[400], 401: ERRORS[401], 429: ERRORS[429]},
        description="The same answer as the socket's `receipts` frame. Ids of envelopes you did "
        "not send are `unknown`, like ids that do not exist.",
    )
    def get(self, request):
        query = ReceiptsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rate_limit_hit("receipts", str(request.user.pk))
        return Response(selectors.envelope_receipts(user_id=request.user.pk, ids=query.validated_data["ids"]))


class GroupMessagesView(APIView):
    """A group message over REST (docs/PROTOCOL.md section 23), as the socket's `group_send`."""

    @extend_schema(
        request=GroupSendSerializer,
        responses={
            201: SentSerializer,
            200: SentSerializer,
            400: error_doc("`invalid_keys`, `invalid_group`, `invalid_epoch`, or another malformed field."),
            401: ERRORS[401],
            403: ERRORS[403],
            404: error_doc("`group_not_found`: you are not a member of a group with this id."),
            409: error_doc("`stale_epoch` (with `epoch`, the group's current one), `client_id_reused`, `no_devices`."),
            413: OpenApiResponse(ErrorSerializer, description="Body larger than MESSAGE_MAX_BODY_BYTES."),
            429: ERRORS[429],
        },
        description="Store a group message for the group's current member devices: the body once, and "
        "a copy per member device other than yours with its sender key entry if any. 201 when stored, "
        "200 with the same id when this client_id was already sent.",
    )
    def post(self, request):
        local_rate_limit_hit("group_send", request.user.pk)
        rate_limit_hit("group_send", str(request.user.pk))
        if not isinstance(request.data, dict):
            raise InvalidFrame("The body must be a JSON object.")
        send = group_messages.group_send_parse(request.data, sender=request.user, sender_device=request.user.device_id)
        result = services.envelope_send(send)
        return Response(
            {"client_id": str(result.client_id), "id": result.id},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class GroupReceiptsView(APIView):
    """Where your group messages stand (the socket's `group_receipts` frame)."""

    @extend_schema(
        request=IdsSerializer,
        responses={200: GroupReceiptsSerializer, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403]},
        description="For each of your group messages among `ids`: members delivered to, members who read, "
        "and members it was sent to. Ids of anything else are left out.",
    )
    def post(self, request):
        local_rate_limit_hit("receipts", request.user.pk)
        serializer = IdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(group_messages.group_receipts_of(user_id=request.user.pk, ids=serializer.validated_data["ids"]))
