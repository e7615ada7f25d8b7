from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.MessagesView.as_view(), name="messages"),
    path("ack", views.AckView.as_view(), name="ack"),
    path("read", views.ReadView.as_view(), name="read"),
    path("receipts", views.ReceiptsView.as_view(), name="receipts"),
]
