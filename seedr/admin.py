"""Operator console for Seedr connections: who is connected, since when, and a revoke action.

Tokens are never shown or editable here; revoking goes through seedr.services (audited, jobs put on hold).
"""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin, report
from seedr import services
from seedr.models import SeedrAccount


@admin.register(SeedrAccount)
class SeedrAccountAdmin(ReadOnlyAdmin):
    list_display = ("user", "state", "account_name", "method", "connected_at", "refreshed_at", "expired_at")
    list_filter = ("state", "method")
    list_select_related = ("user",)
    search_fields = ("user__email", "account_name")
    fields = ("user", "state", "method", "account_name", "connected_at", "refreshed_at", "expired_at",
              "last_error", "auto_start", "insights_at", "insights")
    readonly_fields = fields
    actions = ["revoke_sessions"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("token")  # never decrypted for a list

    @admin.action(description="Revoke the Seedr session (forget its tokens)")
    def revoke_sessions(self, request, queryset):
        done, skipped = 0, []
        for account in queryset.select_related("user"):
            if not account.token:
                skipped.append(f"{account.user}: not connected")
                continue
            services.revoke(request.user, account)
            done += 1
        report(self, request, "Seedr sessions revoked", done, skipped)
