"""Operator console for indexers: every user's and the shared ones, their health, a test action; the operator
adds shared indexers here (credentials typed once, never shown again). Every change goes through services
(audited). Stored search results are listed read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from accounts.admin import ServiceDeleteMixin, report
from indexers import services
from indexers.models import Indexer, Kind, SearchResult

EDITABLE = ("name", "kind", "url", "enabled", "priority", "categories", "timeout", "request_interval", "privacy")


class IndexerForm(forms.ModelForm):
    secret = forms.CharField(required=False, widget=forms.PasswordInput, label="Credential (write-only)",
                             help_text="MyAnonamouse: the mam_id; Torznab: the API key. Blank: keep the stored one.")

    class Meta:
        model = Indexer
        fields = (*EDITABLE, "shared_with_plan")


@admin.register(Indexer)
class IndexerAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    form = IndexerForm
    list_display = ("name", "owner", "kind", "shared_with_plan", "enabled", "priority", "avg_response_ms",
                    "success_rate", "consecutive_failures", "backoff_until", "last_error_code")
    list_filter = ("kind", "enabled", "privacy", ("owner", admin.EmptyFieldListFilter), "last_error_code")
    list_select_related = ("owner", "shared_with_plan")
    search_fields = ("name", "owner__email", "url")
    readonly_fields = ("owner", "avg_response_ms", "success_rate", "consecutive_failures", "last_error",
                       "last_error_code", "last_success_at", "last_failure_at", "backoff_until", "account_status",
                       "caps", "caps_at", "created_at")
    actions = ["test_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("credentials")

    def get_fields(self, request, obj=None):
        return [*EDITABLE, "shared_with_plan", "secret", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        data = {k: form.cleaned_data[k] for k in EDITABLE if k in form.cleaned_data}
        secret = form.cleaned_data.get("secret") or ""
        name = {Kind.MYANONAMOUSE: "mam_id", Kind.TORZNAB: "apikey"}.get(data.get("kind"))
        credentials = {name: secret} if secret and name else None
        if change:
            fresh = Indexer.objects.get(pk=obj.pk)
            fresh.shared_with_plan = form.cleaned_data.get("shared_with_plan") if fresh.owner_id is None else None
            saved = services.update_indexer(request.user, fresh, credentials=credentials, **data)
        else:
            saved = services.create_indexer(request.user, credentials=credentials, shared=True,
                                            plan=form.cleaned_data.get("shared_with_plan"), **data)
        obj.pk = saved.pk

    def delete_service(self, actor, obj: Indexer) -> None:
        services.delete_indexer(actor, obj)

    @admin.action(description="Test now (capabilities, account, latency)")
    def test_now(self, request, queryset):
        done, failed = 0, []
        for indexer in queryset:
            result = services.test_indexer(request.user, Indexer.objects.get(pk=indexer.pk))
            if result.ok:
                done += 1
            else:
                failed.append(f"{indexer.name}: {result.detail}")
        report(self, request, "Indexers answered", done, failed)


@admin.register(SearchResult)
class SearchResultAdmin(admin.ModelAdmin):
    list_display = ("title", "user", "indexer", "seeders", "size", "published_at", "expires_at")
    list_select_related = ("user", "indexer")
    search_fields = ("title", "user__email")
    list_filter = ("indexer__kind",)
    fields = ("user", "indexer", "title", "guid", "size", "seeders", "leechers", "grabs", "files", "published_at",
              "categories", "flags", "info_url", "quality", "extra", "score", "created_at", "expires_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("download_url", "magnet", "info_hash")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
