"""Operator console for the job spine, the blocklist, heartbeats, and the /admin/health/ page.

Jobs are never edited here: status moves only through downloads.services (the "Terminate" and "Retry"
actions). Lists never load or show magnets, .torrent data or info-hashes; a job's change view shows its
info-hash read-only, and a blocked hash is shown only on its own page. Search accepts an info-hash and
finds it through the stored HMAC.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import services as accounts
from accounts.admin import AuditedAdmin, ReadOnlyAdmin, ReadOnlyInline, ServiceDeleteMixin, report
from config.admin_paginator import CappedCountPaginator
from config.crypto import keyed_hash
from config.errors import DomainError
from downloads import finish, health, intake, services
from downloads.models import (
    BackendPolicy,
    Batch,
    BlockedInfoHash,
    Job,
    JobEvent,
    JobFile,
    PreloadItem,
    ProcessHeartbeat,
)

# Encrypted job columns: never loaded by a list (cost of decrypting, and nothing to show).
JOB_SECRETS = ("magnet", "torrent", "info_hash")
FILES_SHOWN_INLINE = 50


def _info_hash_digest(term: str) -> str | None:
    """The lookup HMAC of a search term that is an info-hash (hex or base32), else None."""
    term = term.strip()
    if len(term) not in (32, 40):
        return None
    try:
        parsed = intake.parse_magnet(f"magnet:?xt=urn:btih:{term}")
    except DomainError:
        return None
    return keyed_hash(parsed.info_hash)


def _job_link(job_id: int | None, label: str = "") -> str:
    if job_id is None:
        return "—"
    url = reverse("admin:downloads_job_change", args=[job_id])
    return format_html('<a href="{}">#{} {}</a>', url, job_id, label)


def _changelist(model: type, **params: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") + f"?{query}"


# --- jobs -----------------------------------------------------------------------------------------


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", f"No update for {int(health.STUCK_AFTER.total_seconds() // 60)}+ min")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=health.stuck_jobs().values("pk"))
        return queryset


class FailedFilter(admin.SimpleListFilter):
    title = "failed"
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return [("hour", "In the last hour"), ("today", "Today")]

    def queryset(self, request, queryset):
        if self.value() == "hour":
            since = timezone.now() - health.FAILED_WINDOW
        elif self.value() == "today":
            since = health.start_of_today()
        else:
            return queryset
        return queryset.filter(pk__in=health.failed_since(since).values("pk"))


class FirstFilesFormSet(BaseInlineFormSet):
    """Only the first files: a torrent can hold 100,000; the full list is one link away."""

    def get_queryset(self):
        if not hasattr(self, "_first_files"):
            self._first_files = super().get_queryset()[:FILES_SHOWN_INLINE]
        return self._first_files


class JobFileInline(ReadOnlyInline):
    model = JobFile
    formset = FirstFilesFormSet
    fields = ("path", "size", "completed", "mime_type", "index")
    readonly_fields = fields
    verbose_name_plural = f"files (first {FILES_SHOWN_INLINE})"

    @admin.display(description="Size")
    def size(self, obj: JobFile) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="Completed")
    def completed(self, obj: JobFile) -> str:
        return filesizeformat(obj.completed_bytes)


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "user", "backend", "status", "progress_percent", "size", "created_at",
                    "updated_at")
    list_display_links = ("id", "name")
    list_select_related = ("user",)
    list_filter = ("status", "backend", "ephemeral", StuckFilter, FailedFilter,
                   ("created_at", admin.DateFieldListFilter))
    search_fields = ("name", "user__email", "id__exact")
    search_help_text = "Name, owner's email, job id, or an info-hash."
    actions = ("terminate", "retry", "retry_postprocess")
    paginator = CappedCountPaginator
    show_full_result_count = False
    inlines = (JobFileInline,)
    fieldsets = (
        ("Job", {"fields": ("id", "user", "name", "backend", "status", "reason_code", "reason", "batch",
                            "position", "is_private", "info_hash", "ephemeral")}),
        ("Progress", {"fields": ("progress_percent", "size", "downloaded_bytes", "uploaded_bytes",
                                 "download_rate", "upload_rate", "eta_seconds", "peers", "seeds")}),
        ("Backend", {"fields": ("remote_id", "claimed_by", "claimed_at", "last_progress_event_at")}),
        ("Dates", {"fields": ("created_at", "updated_at", "started_at", "finished_at", "data_deleted_at",
                              "last_read_at")}),
        ("History", {"fields": ("events_link", "files_link")}),
    )
    readonly_fields = tuple(field for _, options in fieldsets for field in options["fields"])

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*JOB_SECRETS)

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digest = _info_hash_digest(search_term)
        if digest:
            results = results | queryset.filter(info_hash_hmac=digest)
        return results, may_have_duplicates

    @admin.display(description="Progress", ordering="progress")
    def progress_percent(self, obj: Job) -> str:
        return f"{obj.progress * 100:.1f} %"

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: Job) -> str:
        return filesizeformat(obj.size_bytes) if obj.size_bytes is not None else "—"

    @admin.display(description="Events")
    def events_link(self, obj: Job) -> str:
        return format_html('<a href="{}">Events of this job</a>', _changelist(JobEvent, job__id__exact=obj.pk))

    @admin.display(description="Files")
    def files_link(self, obj: Job) -> str:
        return format_html('<a href="{}">All files of this job</a>', _changelist(JobFile, job__id__exact=obj.pk))

    @admin.action(description="Terminate selected jobs (cancel, keep data)")
    def terminate(self, request, queryset) -> None:
        self._each(request, queryset, services.terminate_job, "Terminated")

    @admin.action(description="Retry selected failed / cancelled jobs")
    def retry(self, request, queryset) -> None:
        self._each(request, queryset, services.retry_job, "Queued again")

    @admin.action(description="Retry post-processing of selected jobs (failed while processing)")
    def retry_postprocess(self, request, queryset) -> None:
        self._each(request, queryset, finish.retry_postprocess, "Post-processing again")

    def _each(self, request, queryset, service, verb: str) -> None:
        done, skipped = 0, []
        for job in queryset:
            try:
                service(request.user, job)
            except DomainError as exc:
                skipped.append(f"#{job.pk} ({exc.detail})")
                continue
            done += 1
        report(self, request, verb, done, skipped)


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "job_link", "kind", "code")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("user", "job")
    search_fields = ("=code", "job__id__exact")
    search_help_text = "Exact code or job id."
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ("id", "created_at", "user", "job_link", "kind", "code", "data")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*(f"job__{name}" for name in JOB_SECRETS))

    @admin.display(description="Job", ordering="job_id")
    def job_link(self, obj: JobEvent) -> str:
        # The history outlives the job (no FK constraint): a deleted job is shown by id only.
        if obj.job_id is not None and obj.job is None:
            return f"#{obj.job_id} (deleted)"
        return _job_link(obj.job_id, obj.job.name if obj.job else "")


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "user", "backend", "created_at", "jobs_link")
    list_select_related = ("user",)
    list_filter = ("backend", ("created_at", admin.DateFieldListFilter))
    search_fields = ("name", "user__email", "id__exact")
    show_full_result_count = False
    fields = ("id", "name", "user", "backend", "created_at", "jobs_link")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(job_count=Count("jobs"))

    @admin.display(description="Jobs", ordering="job_count")
    def jobs_link(self, obj: Batch) -> str:
        return format_html('<a href="{}">{} jobs</a>', _changelist(Job, batch__id__exact=obj.pk), obj.job_count)


@admin.register(JobFile)
class JobFileAdmin(ReadOnlyAdmin):
    list_display = ("path", "job_link", "size", "completed", "mime_type")
    list_select_related = ("job",)
    search_fields = ("path", "job__id__exact")
    search_help_text = "Path or job id."
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ("job_link", "path", "index", "size", "completed", "mime_type")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*(f"job__{name}" for name in JOB_SECRETS))

    @admin.display(description="Job", ordering="job_id")
    def job_link(self, obj: JobFile) -> str:
        return _job_link(obj.job_id, obj.job.name)

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: JobFile) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="Completed", ordering="completed_bytes")
    def completed(self, obj: JobFile) -> str:
        return filesizeformat(obj.completed_bytes)


# --- blocklist ------------------------------------------------------------------------------------


class BlockInfoHashForm(forms.ModelForm):
    """Takes the info-hash in clear; the service stores it encrypted beside its HMAC."""

    info_hash = forms.CharField(
        label="Info-hash", max_length=40, help_text="40 hexadecimal or 32 base32 characters (BitTorrent v1)."
    )

    class Meta:
        model = BlockedInfoHash
        fields = ("reason",)

    def clean_info_hash(self) -> str:
        value = self.cleaned_data["info_hash"].strip()
        if _info_hash_digest(value) is None:
            raise forms.ValidationError("Give a 40-character hex (or 32-character base32) info-hash.")
        return value


@admin.register(BlockedInfoHash)
class BlockedInfoHashAdmin(ServiceDeleteMixin, AuditedAdmin):
    list_display = ("id", "reason", "created_by", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("reason",)
    search_help_text = "Reason, or the exact info-hash."
    show_full_result_count = False
    audit_additions = False  # downloads.services.block_info_hash writes "blocklist.add"

    def has_change_permission(self, request, obj=None):
        return False  # block again with a new reason, or delete (unblock): both leave an audit row

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = BlockInfoHashForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("info_hash", "reason") if obj is None else ("info_hash", "reason", "created_by", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("info_hash", "reason", "created_by", "created_at")

    def get_search_results(self, request, queryset, search_term):
        digest = _info_hash_digest(search_term)
        if digest:
            return queryset.filter(info_hash_hmac=digest), False
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request, obj: BlockedInfoHash, form, change: bool) -> None:
        saved = services.block_info_hash(request.user, form.cleaned_data["info_hash"], form.cleaned_data["reason"])
        obj.pk, obj.info_hash_hmac, obj.created_at = saved.pk, saved.info_hash_hmac, saved.created_at
        obj._state.adding = False

    def delete_service(self, actor, obj: BlockedInfoHash) -> None:
        # Unblocking: the audit row names the entry and its reason, never the hash itself.
        accounts.delete_record(actor, obj, action="blocklist.remove", reason=obj.reason)


# --- fail-over policies ---------------------------------------------------------------------------


@admin.register(BackendPolicy)
class BackendPolicyAdmin(AuditedAdmin):
    """A plan's default fail-over (the operator's) and users' own policies (downloads/failover.py). The form
    checks the shape and, for a plan, that every backend is one of the plan's (`BackendPolicy.clean`)."""

    list_display = ("__str__", "plan", "user", "triggers", "stall_minutes", "offline_grace_minutes", "updated_at")
    list_select_related = ("plan", "user")
    list_filter = (("plan", admin.EmptyFieldListFilter), ("user", admin.EmptyFieldListFilter))
    search_fields = ("plan__name", "user__email")
    autocomplete_fields = ("user",)
    fields = ("plan", "user", "backends", "triggers", "stall_minutes", "offline_grace_minutes")
    show_full_result_count = False


# --- processes and health -------------------------------------------------------------------------


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "started_at", "last_seen", "age", "info")
    list_filter = ("kind",)
    search_fields = ("name",)
    fields = ("name", "kind", "started_at", "last_seen", "age", "info")
    readonly_fields = fields

    @admin.display(description="Age")
    def age(self, obj: ProcessHeartbeat) -> str:
        seconds = (timezone.now() - obj.last_seen).total_seconds()
        return f"{seconds:.0f} s"


@admin.register(PreloadItem)
class PreloadItemAdmin(ReadOnlyAdmin):
    """The preload queue as the worker sees it (streaming/preload.py): highest priority first."""

    list_display = ("job", "user", "priority", "state", "engine", "updated_at")
    list_select_related = ("job", "user")
    list_filter = ("state",)
    search_fields = ("user__email", "job__id__exact")
    ordering = ("-priority", "-updated_at")
    fields = ("job", "user", "priority", "state", "path", "engine", "updated_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*(f"job__{name}" for name in JOB_SECRETS))


# Figures apps above the spine add to the health page (name → callable returning JSON-able data), registered
# from their AppConfig.ready(), so this module never imports them (audiobooks: open tracker alerts by kind).
HEALTH_SECTIONS: dict[str, Callable[[], object]] = {}


def health_view(request: HttpRequest) -> HttpResponse:
    """Queue, heartbeats, relay lag and recent failures; `?format=json` for monitoring."""
    figures = {**health.snapshot(), **{name: section() for name, section in HEALTH_SECTIONS.items()}}
    if request.GET.get("format") == "json":
        return JsonResponse(figures)
    context = {**admin.site.each_context(request), "title": "Health", "figures": figures}
    return TemplateResponse(request, "admin/health.html", context)


def _with_health_url(get_urls):
    """Put /admin/health/ (URL name admin:health, staff only) in front of the default site's URLs.

    Wrapping the default site's `get_urls` keeps config/urls.py at `admin.site.urls`; admin modules are
    imported by autodiscover before the URLconf is read, so the wrapped list is the one served.
    """

    def get_urls_with_health():
        return [path("health/", admin.site.admin_view(health_view), name="health"), *get_urls()]

    return get_urls_with_health


admin.site.get_urls = _with_health_url(admin.site.get_urls)
admin.site.site_header = "Flotilla operator console"
admin.site.site_title = "Flotilla admin"
admin.site.index_title = "Operations"
