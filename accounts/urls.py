from django.urls import path

from accounts import views

app_name = "accounts"

# `register` is keys.views.RegisterView (an account is created with its device keys), routed
# at auth/register by messenger.urls.

urlpatterns = [
    path("csrf", views.CsrfView.as_view(), name="csrf"),
    path("login", views.LoginView.as_view(), name="login"),
    path("refresh", views.RefreshView.as_view(), name="refresh"),
    path("logout", views.LogoutView.as_view(), name="logout"),
    path("me", views.MeView.as_view(), name="me"),
]
