from django.urls import path

from contacts import views

app_name = "contacts"

urlpatterns = [
    path("", views.ContactListView.as_view(), name="list"),
    path("requests", views.ContactRequestsView.as_view(), name="requests"),
    path("requests/<int:request_id>", views.ContactRequestAnswerView.as_view(), name="request"),
    # Last: an email never equals "requests" (it has an @).
    path("<str:email>", views.ContactView.as_view(), name="contact"),
]
