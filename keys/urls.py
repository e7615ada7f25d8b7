from django.urls import path

from keys import views

app_name = "keys"

urlpatterns = [
    path("bundle/<str:email>", views.BundleView.as_view(), name="bundle"),
    path("identity", views.IdentityView.as_view(), name="identity"),
    path("identity/<str:email>", views.IdentityLookupView.as_view(), name="identity-lookup"),
    path("prekeys", views.PreKeyUploadView.as_view(), name="prekeys"),
    path("prekeys/count", views.PreKeyCountView.as_view(), name="prekeys-count"),
    path("signed-prekey", views.SignedPreKeyView.as_view(), name="signed-prekey"),
]
