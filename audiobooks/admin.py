"""Operator console for audiobooks: every user's books with their state and step, filters for the ones stuck
or failed today, and Retry through the service (audited). Machine-written fields are read-only; the book's
metadata can be corrected (audited as an admin change) before a retry."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import AuditedAdmin, report
from audiobooks import services
from audiobooks.models import AudiobookJob
from config.admin_paginator import CappedCountPaginator
from config.errors import DomainError

STUCK_AFTER = timedelta(minutes=30)  # a book's row is written at least every step and every second of merging


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", f"Processing, no update for {int(STUCK_AFTER.total_seconds() // 60)}+ min")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(state=AudiobookJob.State.PROCESSING, updated_at__lt=timezone.now() - STUCK_AFTER)
        return queryset


class FailedTodayFilter(admin.SimpleListFilter):
    title = "failed"
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return [("today", "Today")]

    def queryset(self, request, queryset):
        if self.value() == "today":
            midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
            return queryset.filter(state=AudiobookJob.State.FAILED, updated_at__gte=midnight)
        return queryset


@admin.register(AudiobookJob)
class AudiobookJobAdmin(AuditedAdmin):
    list_display = ("id", "title", "owner", "job_link", "state", "step_text", "error_code", "updated_at")
    list_select_related = ("job", "job__user")
    list_filter = ("state", StuckFilter, FailedTodayFilter, "error_code")
    search_fields = ("title", "series", "job__user__email", "job__id__exact")
    search_help_text = "Title, series, owner's email or job id."
    actions = ("retry",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    readonly_fields = ("job_link", "owner", "state", "step", "step_done", "step_total", "error_code", "error",
                       "warnings", "published_path", "published_at", "duration_seconds", "chapters",
                       "scan_status", "created_at", "updated_at")
    fieldsets = (
        ("Book", {"fields": ("job_link", "owner", "title", "authors", "narrators", "series", "sequence", "year",
                             "genre", "description", "asin", "isbn", "cover_url", "accept_damaged", "keep_both")}),
        ("Processing (written by the worker)", {"fields": (
            "state", "step", "step_done", "step_total", "error_code", "error", "warnings", "published_path",
            "published_at", "duration_seconds", "chapters", "scan_status", "created_at", "updated_at")}),
    )

    def has_add_permission(self, request) -> bool:
        return False  # a book is one of a user's jobs marked through the service (page, API, grab)

    @admin.display(description="Owner", ordering="job__user__email")
    def owner(self, book: AudiobookJob) -> str:
        return book.job.user.email

    @admin.display(description="Job")
    def job_link(self, book: AudiobookJob) -> str:
        url = reverse("admin:downloads_job_change", args=[book.job_id])
        return format_html('<a href="{}">#{} {}</a>', url, book.job_id, book.job.name[:80])

    @admin.display(description="Step")
    def step_text(self, book: AudiobookJob) -> str:
        if book.step in ("checking", "merging"):
            return f"{book.step} {book.step_done}/{book.step_total}"
        return book.step or "—"

    @admin.action(description="Retry selected failed books")
    def retry(self, request, queryset) -> None:
        done, skipped = 0, []
        for book in queryset.select_related("job", "job__user"):
            try:
                services.retry(request.user, book)
            except DomainError as exc:
                skipped.append(f"#{book.pk} ({exc.detail})")
                continue
            done += 1
        report(self, request, "Retrying", done, skipped)
