"""Tracker rules in the operator console (edits audited through the service); ledgers and alerts read-only."""

from __future__ import annotations

from django.contrib import admin

from downloads.admin import HEALTH_SECTIONS

from . import status
from .models import SeedingLedger, TrackerAlert, TrackerRules
from .services import update_rules


@admin.register(TrackerRules)
class TrackerRulesAdmin(admin.ModelAdmin):
    list_display = ("name", "tracker", "enabled", "min_seed_time", "seed_window", "ratio_floor", "ratio_margin",
                    "unsatisfied_margin", "inactive_after", "engine_allowed", "keep_seeding", "updated_at")
    list_filter = ("enabled", "keep_seeding", "engine_allowed")
    search_fields = ("name", "tracker")

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if change:
            update_rules(request.user, obj, **changes)
        else:
            update_rules(request.user, obj, **{f: getattr(obj, f) for f in form.fields})


@admin.register(SeedingLedger)
class SeedingLedgerAdmin(admin.ModelAdmin):
    list_display = ("job", "tracker", "seeded_seconds", "completed_at", "satisfied_at", "tracker_satisfied_at",
                    "released_at", "checked_at")
    list_filter = ("tracker", ("satisfied_at", admin.EmptyFieldListFilter))
    list_select_related = ("job",)
    search_fields = ("job__name",)
    readonly_fields = [f.name for f in SeedingLedger._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TrackerAlert)
class TrackerAlertAdmin(admin.ModelAdmin):
    """Alerts the compliance sweep raised and cleared (machine-written: read-only)."""

    list_display = ("kind", "subject", "user", "job", "indexer", "raised_at", "cleared_at", "emailed_at")
    list_filter = ("kind", ("cleared_at", admin.EmptyFieldListFilter))
    list_select_related = ("user", "job", "indexer")
    search_fields = ("user__email", "subject", "message")
    readonly_fields = [f.name for f in TrackerAlert._meta.fields]
    show_full_result_count = False

    def get_queryset(self, request):
        secrets = ("job__magnet", "job__torrent", "job__info_hash", "indexer__credentials")
        return super().get_queryset(request).defer(*secrets)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


HEALTH_SECTIONS["tracker_alerts"] = status.open_counts  # the health page: open alerts by kind (JSON too)
