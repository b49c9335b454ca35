"""Operator console for streaming's rows: share links (revoke from here too) and the zip CRC cache."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from streaming import shares
from streaming.models import FileChecksum, Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "job", "jobfile", "created_at", "expires_at", "max_downloads", "download_count",
                    "bytes_sent", "revoked_at"]
    list_select_related = ["user", "job", "jobfile"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["user__email", "job__name"]
    raw_id_fields = ["user", "job", "jobfile"]
    exclude = ["token", "token_hash"]  # the link is the owner's credential: never shown to an operator
    readonly_fields = ["user", "job", "jobfile", "created_at", "expires_at", "max_downloads", "download_count",
                       "bytes_sent", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected links")
    def revoke(self, request, queryset) -> None:
        count = 0
        for share in queryset.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()):
            shares.revoke_share(share.user, share.pk, actor=request.user)
            count += 1
        self.message_user(request, f"{count} link(s) revoked.", messages.SUCCESS)


@admin.register(FileChecksum)
class FileChecksumAdmin(admin.ModelAdmin):
    list_display = ["jobfile", "size", "crc32", "computed_at"]
    list_select_related = ["jobfile"]
    raw_id_fields = ["jobfile"]
    readonly_fields = ["jobfile", "size", "mtime_ns", "inode", "crc32", "computed_at"]
