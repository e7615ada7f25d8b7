from django.urls import path

from contacts import views

app_name = "contacts"

# No route takes an email in its path: paths are written to daphne's access log and to every
# proxy's; the email travels in the JSON body instead.
urlpatterns = [
    path("", views.ContactListView.as_view(), name="list"),
    path("requests", views.ContactRequestsView.as_view(), name="requests"),
    path("requests/<int:request_id>", views.ContactRequestAnswerView.as_view(), name="request"),
    path("remove", views.ContactRemoveView.as_view(), name="remove"),
]
