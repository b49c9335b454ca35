"""Server-rendered pages of the downloads app: the dashboard and a job's detail page.

The pages render the first state without JavaScript; static/js/ then keeps them live over the websocket.
The presenters here format with config/formatting.py, mirrored by static/js/flotilla.js.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.decorators import policy_required
from billing.presentation import usage_meters
from billing.services import usage_summary
from config.errors import DomainError
from config.formatting import human_bytes, human_eta, human_rate
from downloads import backends, failover, playable, services
from downloads.models import (
    ACTIVE,
    CANCELLABLE,
    FAILOVER_TRIGGERS,
    PAUSABLE,
    RESUMABLE,
    RETRYABLE,
    TERMINAL,
    EventKind,
    Job,
    JobEvent,
    Status,
)

PAGE_SIZE = 50
SECRET_FIELDS = ("magnet", "torrent", "info_hash")
SERVER_FILE_LIMIT = 500

# Which action buttons a job shows, by status (the services refuse the rest anyway).
ACTION_STATUSES: dict[str, list[str]] = {
    "pause": sorted(PAUSABLE),
    "resume": sorted(RESUMABLE),
    "cancel": sorted(CANCELLABLE),
    "retry": sorted(RETRYABLE),
    "delete": list(Status.values),
    # Single files (downloads/files.py): only once the backend has let go of them.
    "delete_file": sorted(TERMINAL),
}

# Dashboard filter tabs: key → statuses shown (None = everything).
FILTERS: dict[str, tuple[str, list[str] | None]] = {
    "all": ("All", None),
    "active": ("Active", sorted(ACTIVE)),
    "queued": ("Queued", [Status.QUEUED]),
    "paused": ("Paused", [Status.PAUSED]),
    "completed": ("Completed", [Status.COMPLETED]),
    "failed": ("Failed", [Status.FAILED]),
    "cancelled": ("Cancelled", [Status.CANCELLED]),
}

BACKEND_LABELS = {"engine": "Built-in engine"}


# --- presenters -----------------------------------------------------------------------------------


def job_state(job: Job) -> dict:
    """The job's public fields (the REST API's shape, minus timestamps): the JS starts from these."""
    return {
        "id": job.pk,
        "name": job.name or f"Job {job.pk}",
        "status": job.status,
        "status_display": job.get_status_display(),
        "reason_code": job.reason_code,
        "reason": job.reason,
        "backend": job.backend,
        "size_bytes": job.size_bytes,
        "downloaded_bytes": job.downloaded_bytes,
        "uploaded_bytes": job.uploaded_bytes,
        "progress": job.progress,
        "download_rate": job.download_rate,
        "upload_rate": job.upload_rate,
        "eta_seconds": job.eta_seconds,
        "peers": job.peers,
        "seeds": job.seeds,
        "data_deleted": job.data_deleted_at is not None,
        "ephemeral": job.ephemeral,  # "Play without downloading": marked with a Keep button (static/js/ephemeral.js)
        # A Play button (templates/partials/job_actions.html) where the player has a file to play; set by the
        # pages that annotate `playable`, left out elsewhere (the JS keeps what it knows).
        **({"playable": job.playable and job.data_deleted_at is None} if hasattr(job, "playable") else {}),
    }


def job_card(job: Job) -> dict:
    """What one job card shows, already formatted (the no-JS rendering)."""
    percent = max(0, min(100, round(job.progress * 100)))
    return {
        **job_state(job),
        "percent": percent,
        "downloaded": human_bytes(job.downloaded_bytes),
        "size": human_bytes(job.size_bytes),
        "down": human_rate(job.download_rate),
        "up": human_rate(job.upload_rate),
        "eta": human_eta(job.eta_seconds),
        "actions": {name for name, statuses in ACTION_STATUSES.items() if job.status in statuses},
    }


def backend_choices(user) -> list[dict]:
    """Backends offered in the add dialog: the built-in engine first, then whatever registered itself
    (a kind with accounts of its own, like the user's servers, lists each one)."""
    choices = {"engine": BACKEND_LABELS["engine"]}
    for kind, backend in sorted(backends.registered().items()):
        if kind in choices:
            continue
        for value, label in backend.choices(user):
            choices.setdefault(value, label or BACKEND_LABELS.get(kind, kind))
    return [{"value": value, "label": label} for value, label in choices.items()]


def event_text(event: JobEvent) -> str:
    """One human line per event (static/js/job_detail.js writes the same for live ones)."""
    data = event.data or {}
    if event.kind == EventKind.CREATED:
        return f"Added ({data.get('backend') or 'unknown backend'})."
    if event.kind == EventKind.STATUS:
        label = Status(event.code).label if event.code in Status.values else event.code
        return f"{label}. {data.get('reason', '')}".strip()
    if event.kind == EventKind.FILES and event.code == "deleted":
        return f"Deleted file {data.get('path', '')}."
    if event.kind == EventKind.FILES:
        count = data.get("count", 0)
        return f"{count} file{'' if count == 1 else 's'} registered."
    if event.kind == EventKind.DELETED:
        return "Deleted."
    return data.get("reason") or data.get("text") or event.code


# --- views ----------------------------------------------------------------------------------------


def _page_config(**extra) -> dict:
    """Settings the page's JS needs (URLs, limits), handed over with json_script."""
    return {
        "wsPath": "/ws/events/",
        "apiJobs": reverse("job-list"),
        "apiBatches": reverse("batch-list"),
        "detailUrl": reverse("downloads:job_detail", args=[0]),
        "playUrl": reverse("delivery:player", args=[0]),  # the player page (streaming/), by URL name only
        "dashboardUrl": reverse("downloads:dashboard"),
        "actions": ACTION_STATUSES,
        "statusLabels": dict(Status.choices),
        "torrentMaxBytes": settings.TORRENT_MAX_BYTES,
        "batchMaxLines": settings.BATCH_MAX_LINES,
        **extra,
    }


@policy_required
@ensure_csrf_cookie
def dashboard(request: HttpRequest) -> HttpResponse:
    key = request.GET.get("status", "all")
    if key not in FILTERS:
        key = "all"
    statuses = FILTERS[key][1]
    choices = backend_choices(request.user)
    labels = {c["value"]: c["label"] for c in choices}
    backend = request.GET.get("backend", "")
    backend = backend if backend in labels else ""
    # Secrets stay encrypted and unread: the cards never show them, and a stored .torrent can be megabytes.
    jobs = (Job.objects.for_user(request.user).defer(*SECRET_FIELDS).annotate(playable=playable.has_playable_file())
            .order_by("-id"))
    if statuses is not None:
        jobs = jobs.filter(status__in=statuses)
    if backend:
        jobs = jobs.filter(backend=backend)
    jobs = list(jobs[:PAGE_SIZE])
    return render(request, "downloads/dashboard.html", {
        "nav": "dashboard",
        "cards": [{**job_card(job), "backend_label": labels.get(job.backend, job.backend)} for job in jobs],
        "states": [job_state(job) for job in jobs],
        "filters": [{"key": k, "label": label} for k, (label, _) in FILTERS.items()],
        "filter": key,
        "filter_label": FILTERS[key][0],
        "usage": usage_meters(usage_summary(request.user)),
        "backends": choices,
        "backend_filter": backend,
        "torrent_max": human_bytes(settings.TORRENT_MAX_BYTES),
        "config": _page_config(filter=statuses, backend=backend or None, backendLabels=labels),
        "blank_card": _blank_card(),
    })


def _blank_card() -> dict:
    """An empty card: the <template> the JS clones for jobs that arrive live."""
    return {"id": "", "name": "", "status": "queued", "status_display": "", "percent": 0, "actions": set(),
            "playable": False}


SPEED_SAMPLES = 120


def speed_samples(job: Job) -> dict[str, list]:
    """The job's recent rates from its progress and status events (the speed sparkline's first points)."""
    events = services.recent_events(job, limit=SPEED_SAMPLES, include_progress=True)
    points = [(e.created_at.timestamp(), e.data or {}) for e in events
              if e.kind in (EventKind.PROGRESS, EventKind.STATUS) and "download_rate" in (e.data or {})]
    return {
        "t": [round(t, 3) for t, _ in points],
        "down": [data.get("download_rate") or 0 for _, data in points],
        "up": [data.get("upload_rate") or 0 for _, data in points],
    }


@policy_required
@ensure_csrf_cookie
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.for_user(request.user).defer(*SECRET_FIELDS)
                            .annotate(playable=playable.has_playable_file()), pk=pk)
    shown = services.recent_events(job)
    return render(request, "downloads/job_detail.html", {
        "nav": "dashboard",
        "job": job,
        "card": job_card(job),
        "state": job_state(job),
        "files": [
            {"path": f.path, "size": human_bytes(f.size_bytes), "is_complete": f.is_complete}
            for f in job.files.all()[:SERVER_FILE_LIMIT]
        ],
        "events": [{"event": e, "text": event_text(e)} for e in shown],
        "speed": speed_samples(job),
        "config": _page_config(jobId=job.pk, filesUrl=reverse("job-files", args=[job.pk]),
                               fileUrl=reverse("file-detail", args=[0])),
    })


# --- the user's fail-over policy ---------------------------------------------------------------------------


class FailoverPolicyForm(forms.Form):
    backends = forms.CharField(required=False, max_length=400, label="Backends, in order",
                               help_text="Comma-separated, e.g. “seedr, server, engine”. Empty: no fail-over.")
    triggers = forms.MultipleChoiceField(choices=list(FAILOVER_TRIGGERS.items()), required=False,
                                         widget=forms.CheckboxSelectMultiple, label="Move a download on when")
    stall_minutes = forms.IntegerField(min_value=1, max_value=10080, label="Stalled after (minutes)")
    offline_grace_minutes = forms.IntegerField(min_value=1, max_value=10080, label="Offline grace (minutes)")


@policy_required
def failover_policy(request: HttpRequest) -> HttpResponse:
    """Edit the user's own fail-over policy (downloads/failover.py), or go back to their plan's."""
    source, row = failover.effective_policy(request.user)
    initial = {"backends": ", ".join(row.backends), "triggers": row.triggers, "stall_minutes": row.stall_minutes,
               "offline_grace_minutes": row.offline_grace_minutes} if row else {
        "triggers": list(FAILOVER_TRIGGERS), "stall_minutes": 30, "offline_grace_minutes": 15}
    form = FailoverPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and "reset" in request.POST:
        failover.clear_user_policy(request.user)
        messages.success(request, "Your plan's fail-over applies again.")
        return redirect("downloads:failover")
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        data["backends"] = [name.strip().lower() for name in data["backends"].split(",") if name.strip()]
        try:
            failover.set_user_policy(request.user, **data)
        except DomainError as exc:
            form.add_error(None, exc.detail)
        else:
            messages.success(request, "Your fail-over policy is saved.")
            return redirect("downloads:failover")
    choices = list(dict.fromkeys([*backends.registered(), *(
        name for runner in backends.registered().values() for name, _ in runner.choices(request.user))]))
    return render(request, "downloads/failover.html", {"nav": "failover", "form": form, "source": source,
                                                        "choices": choices})


# --- the usage page's storage chart (billing sits below the spine and never reads jobs) ---------------------

STORAGE_CHART_JOBS = 12


def storage_by_job(user) -> dict[str, list]:
    """The jobs holding the most bytes on disk (what the storage meter sums), largest first, the rest as one bar."""
    jobs = (Job.objects.for_user(user).filter(data_deleted_at__isnull=True)
            .annotate(held=Coalesce("size_bytes", "downloaded_bytes")).filter(held__gt=0).order_by("-held", "-id"))
    top = list(jobs.values_list("id", "name", "held")[:STORAGE_CHART_JOBS])
    names = [name or f"Job {pk}" for pk, name, _ in top]
    sizes = [held for _, _, held in top]
    rest = jobs.exclude(pk__in=[pk for pk, _, _ in top]).aggregate(total=Sum("held"))["total"] or 0
    if rest:
        names.append("Other downloads")
        sizes.append(rest)
    return {"names": names, "bytes": sizes}


@policy_required
def storage_chart(request: HttpRequest) -> JsonResponse:
    """GET /usage/storage-by-download.json: the usage page loads its storage chart from here."""
    return JsonResponse(storage_by_job(request.user))
