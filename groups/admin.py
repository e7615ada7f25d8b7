"""Operators moderate groups from their metadata: the groups with their member counts, who is in
which (with role and when they joined), and two actions, removing a member and deleting a group.
Both go through groups.services, so the members are told and the epoch moves on as when a member
does it. Nothing here can add a member or change a role, and nothing about a group's content
exists on the server to show."""

from django.contrib import admin
from django.db.models import Count

from groups import services
from groups.models import Group, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "group"
    fields = ["user", "role", "joined_at", "added_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["uid", "member_count", "epoch", "created_by", "created_at"]
    search_fields = ["uid", "memberships__user__email"]
    date_hierarchy = "created_at"
    fields = ["uid", "epoch", "created_by", "created_at"]
    readonly_fields = fields
    inlines = [MembershipInline]
    ordering = ["-created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").annotate(members=Count("memberships"))

    @admin.display(description="members", ordering="members")
    def member_count(self, group: Group) -> int:
        return group.members

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: Group) -> None:
        services.group_delete(group=obj)

    def delete_queryset(self, request, queryset) -> None:
        for group in queryset:
            services.group_delete(group=group)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["group", "user", "role", "joined_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "group__uid"]
    list_select_related = ["group", "user"]
    fields = ["group", "user", "role", "added_by", "joined_at"]
    readonly_fields = fields
    ordering = ["-joined_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: Membership) -> None:
        services.member_remove(actor=None, uid=obj.group.uid, email=obj.user.email)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset.select_related("group", "user"):
            services.member_remove(actor=None, uid=membership.group.uid, email=membership.user.email)
