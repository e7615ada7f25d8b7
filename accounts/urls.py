from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("csrf", views.CsrfView.as_view(), name="csrf"),
    path("register", views.RegisterView.as_view(), name="register"),
    path("login", views.LoginView.as_view(), name="login"),
    path("refresh", views.RefreshView.as_view(), name="refresh"),
    path("logout", views.LogoutView.as_view(), name="logout"),
    path("me", views.MeView.as_view(), name="me"),
]
