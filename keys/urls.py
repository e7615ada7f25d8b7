from django.urls import path

from keys import views

app_name = "keys"

# No route takes an email in its path: paths (and query strings) are written to daphne's
# access log and to every proxy's; a contact's email travels in the JSON body instead.
urlpatterns = [
    path("bundle", views.BundleView.as_view(), name="bundle"),
    path("bundles", views.BundlesView.as_view(), name="bundles"),
    path("devices", views.DeviceIdsView.as_view(), name="devices"),
    path("identity", views.IdentityView.as_view(), name="identity"),
    path("identity/lookup", views.IdentityLookupView.as_view(), name="identity-lookup"),
    path("prekeys", views.PreKeyUploadView.as_view(), name="prekeys"),
    path("prekeys/count", views.PreKeyCountView.as_view(), name="prekeys-count"),
    path("signed-prekey", views.SignedPreKeyView.as_view(), name="signed-prekey"),
]
