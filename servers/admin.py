"""Operator console for users' torrent servers: who has which, their status, a connection test action.

Passwords are never shown or editable here (users change them through the API or the servers page).
"""

from __future__ import annotations

from django.contrib import admin

from accounts.admin import ServiceDeleteMixin, report
from servers import services
from servers.models import TorrentServer


@admin.register(TorrentServer)
class TorrentServerAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    list_display = ("name", "owner", "type", "address", "enabled", "status", "client_version", "latency_ms",
                    "checked_at", "failures")
    list_filter = ("type", "status", "enabled")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__email", "host")
    readonly_fields = ("owner", "type", "transport", "host", "port", "use_tls", "rpc_path", "socket_path",
                       "username", "download_dir", "remote_path", "local_path", "status", "status_code",
                       "status_message", "latency_ms", "client_version", "checked_at", "failures", "retry_at",
                       "created_at", "updated_at")
    readonly_fields = ("name", "enabled", *readonly_fields)
    fields = readonly_fields
    actions = ["test_connection", "disable", "enable"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("password")  # never decrypted for a list

    def has_add_permission(self, request):
        return False  # servers belong to users: they add them with their credentials

    def delete_service(self, actor, obj: TorrentServer) -> None:
        # Its unfinished jobs fail with `server_deleted` first, and the delete is audited.
        services.delete_server(actor, obj)

    @admin.display(description="address")
    def address(self, server: TorrentServer) -> str:
        return server.address

    @admin.action(description="Test the connection now")
    def test_connection(self, request, queryset):
        done, failed = 0, []
        for server in queryset.select_related("owner"):
            server = TorrentServer.objects.get(pk=server.pk)  # with its password, for the test
            services.test_server(request.user, server)
            if server.status == TorrentServer.Status.CONNECTED:
                done += 1
            else:
                failed.append(f"{server.name}: {server.status_message}")
        report(self, request, "Servers connected", done, failed)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        done = 0
        for server in queryset.select_related("owner").defer("password"):
            services.update_server(request.user, server, enabled=enabled)
            done += 1
        report(self, request, "Servers enabled" if enabled else "Servers disabled", done, [])

    @admin.action(description="Disable (stop polling; new downloads wait)")
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)
