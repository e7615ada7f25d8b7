from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.views import PageView
from chat.views import GroupMessagesView, GroupReceiptsView
from keys.views import (
    DeviceListView,
    DeviceView,
    LinkCancelView,
    LinkOfferView,
    LinkOpenView,
    LinkPollView,
    RegisterView,
)

api_v1 = [
    # Registration creates an account with its device keys: a use case of the keys app.
    path("auth/register", RegisterView.as_view(), name="auth-register"),
    path("auth/", include("accounts.urls")),
    path("contacts/", include("contacts.urls")),
    path("groups/messages", GroupMessagesView.as_view(), name="group-messages"),
    path("groups/receipts", GroupReceiptsView.as_view(), name="group-receipts"),
    path("groups/", include("groups.urls")),
    path("keys/", include("keys.urls")),
    # The account's devices: their keys go with them, so these are views of the keys app.
    path("devices", DeviceListView.as_view(), name="devices"),
    path("devices/<int:device_id>", DeviceView.as_view(), name="device"),
    path("devices/links", LinkOpenView.as_view(), name="device-links"),
    path("devices/links/poll", LinkPollView.as_view(), name="device-link-poll"),
    path("devices/links/offer", LinkOfferView.as_view(), name="device-link-offer"),
    path("devices/links/cancel", LinkCancelView.as_view(), name="device-link-cancel"),
    path("messages/", include("chat.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("", PageView.as_view(template_name="app.html"), name="app"),
    path("login", PageView.as_view(template_name="login.html"), name="login"),
    path("register", PageView.as_view(template_name="register.html"), name="register"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
]

handler404 = "messenger.api.not_found"
