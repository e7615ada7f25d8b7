from django.urls import path

from groups import views

app_name = "groups"

# No route takes a group id or an email in its path (see groups.views).
urlpatterns = [
    path("", views.GroupListView.as_view(), name="list"),
    path("members", views.GroupMembersView.as_view(), name="members"),
    path("remove", views.GroupRemoveView.as_view(), name="remove"),
    path("leave", views.GroupLeaveView.as_view(), name="leave"),
    path("admins", views.GroupAdminsView.as_view(), name="admins"),
    path("changes", views.GroupChangesView.as_view(), name="changes"),
]
