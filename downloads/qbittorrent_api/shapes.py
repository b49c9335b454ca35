"""Jobs rendered as qBittorrent 4.5.2 renders torrents: the same field names, types and sentinels.

The field lists were captured from a real qbittorrent-nox 4.5.2 and are checked side by side against one in
tests/qbittorrent_api/test_side_by_side.py. Paths are what the *arr apps import from: DOWNLOADS_DIR as they
see it (QBITTORRENT_REMOTE_PATH), then `<user id>/<job id>/`, then the torrent's own top folder or file.
"""

from __future__ import annotations

import json
import shutil
from functools import cache as memoize
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Min, OuterRef, Subquery, Sum
from django.utils import timezone

from billing.services import current_plan
from downloads import intake
from downloads.models import EventKind, Job, JobEvent, JobFile, Status
from downloads.qbittorrent_api.models import USE_GLOBAL, QbtCategory
from downloads.qbittorrent_api.services import effective_limits

VERSION = "v4.5.2"
WEBAPI_VERSION = "2.8.19"
BUILD_INFO = {"bitness": 64, "boost": "1.74.0", "libtorrent": "2.0.8.0", "openssl": "3.0.19", "qt": "5.15.8",
              "zlib": "1.2.13"}
MAX_ETA = 8640000  # qBittorrent's "unknown / infinite" ETA (100 days)
MAX_RATIO = 9999.0

S = Status
DOWNLOAD_STATES = frozenset({"downloading", "metaDL", "stalledDL", "queuedDL", "pausedDL", "checkingDL",
                             "forcedDL", "moving"})


# --- paths -------------------------------------------------------------------------------------------


def remote_root() -> PurePosixPath:
    return PurePosixPath(settings.QBITTORRENT_REMOTE_PATH or str(settings.DOWNLOADS_DIR))


def user_save_path(user_id: int) -> str:
    return str(remote_root() / str(user_id))


def save_path(job: Job) -> str:
    return str(remote_root() / str(job.user_id) / str(job.pk))


def content_path(job: Job, first: str | None, last: str | None, count: int) -> str:
    """The torrent's top folder (or single file) under its save path; "" before its files are known.

    `first`/`last` are the job's smallest and largest file paths: they share a top folder exactly when every
    file does (paths sort by that folder first)."""
    base = PurePosixPath(save_path(job))
    if not count or not first or not last:
        return ""
    if count == 1:
        return str(base / first)
    top, top_last = first.split("/", 1)[0], last.split("/", 1)[0]
    return str(base / top) if "/" in first and top == top_last else str(base)


# --- states ------------------------------------------------------------------------------------------


def state(job: Job) -> str:
    """The job's status named the way qBittorrent 4.5 names a torrent's state."""
    done = job.progress >= 1.0
    status = job.status
    if status == S.QUEUED or status == S.STARTING or status == S.WAITING:
        return "queuedUP" if done else "queuedDL"
    if status == S.FETCHING_METADATA:
        return "metaDL"
    if status == S.DOWNLOADING:
        return "downloading" if job.download_rate else "stalledDL"
    if status == S.SEEDING:
        return "uploading" if job.upload_rate else "stalledUP"
    if status in (S.TRANSFERRING, S.PROCESSING):
        return "moving"  # files on their way into (or being finished in) the folder the client imports from
    if status == S.FAILED:
        return "error"
    if status == S.COMPLETED and job.data_deleted_at:
        return "missingFiles"
    if status == S.COMPLETED:
        return "pausedUP"  # seeding is over and the files are in content_path: what the *arr apps wait for
    return "pausedUP" if done else "pausedDL"  # paused, cancelled


# --- torrents ----------------------------------------------------------------------------------------


def annotated(jobs):
    """Everything a torrent row needs, in one query: files' extent, first seeding time, qBittorrent settings."""
    files = JobFile.objects.filter(job=OuterRef("pk")).order_by()
    seeding = JobEvent.objects.filter(job=OuterRef("pk"), kind=EventKind.STATUS, code=S.SEEDING).order_by()
    return jobs.select_related("qbt", "qbt__category", "user").annotate(
        qbt_first=Subquery(files.order_by("path").values("path")[:1]),
        qbt_last=Subquery(files.order_by("-path").values("path")[:1]),
        qbt_count=Subquery(files.values("job").annotate(c=Count("id")).values("c")[:1]),
        qbt_seeding_since=Subquery(seeding.values("job").annotate(t=Min("created_at")).values("t")[:1]),
    )


def _ts(value) -> int:
    return int(value.timestamp()) if value else 0


def _meta(job: Job):
    try:
        return job.qbt
    except Job.qbt.RelatedObjectDoesNotExist:
        return None


def info_hash(job: Job) -> str:
    return (job.info_hash or "").lower()[:40]


def magnet_uri(job: Job) -> str:
    """The job's magnet, or one built from its hash; a private torrent's trackers (passkeys) are left out."""
    if job.magnet and not job.is_private:
        return job.magnet
    return f"magnet:?xt=urn:btih:{info_hash(job)}&dn={quote(job.name or '', safe='')}"


def trackers(job: Job) -> tuple[str, ...]:
    """The job's tracker URLs (from its magnet or .torrent), cached: they never change for a job."""
    key = f"qbt:trackers:{job.pk}"
    found = cache.get(key)
    if found is None:
        try:
            if job.magnet:
                found = intake.parse_magnet(job.magnet).trackers
            elif job.torrent:
                found = intake.parse_torrent(intake.decode_torrent(job.torrent)).trackers
            else:
                found = ()
        except Exception:  # a job stored before today's intake rules: no trackers to show beats a 500
            found = ()
        cache.set(key, tuple(found), 3600)
    return tuple(found)


def seeding_seconds(job: Job) -> int:
    since = getattr(job, "qbt_seeding_since", None)
    if since is None:
        return 0
    end = job.finished_at or timezone.now()
    return max(0, int((end - since).total_seconds()))


def ratio(job: Job) -> float:
    done = job.downloaded_bytes or int((job.size_bytes or 0) * job.progress)
    if not done:
        return 0.0
    return min(MAX_RATIO, job.uploaded_bytes / done)


def torrent(job: Job, plan, priority: int = 0) -> dict:
    """One row of torrents/info (and a value of sync/maindata's torrents, without "hash")."""
    m = _meta(job)
    size = job.size_bytes or 0
    completed = size if job.progress >= 1 else int(size * job.progress)
    current = state(job)
    ratio_limit, minutes_limit = effective_limits(job, plan)
    seeded = seeding_seconds(job)
    own_ratio = m.ratio_limit if m else USE_GLOBAL
    own_minutes = m.seeding_time_limit if m else USE_GLOBAL
    if job.status == S.COMPLETED:
        # Seeding is over for good (the plan's rule, the client's limit or nobody wanting data): tell the
        # *arr apps the limit is reached, which is what lets them remove the torrent after importing.
        own_minutes = min(seeded // 60, minutes_limit) if minutes_limit >= 0 else seeded // 60
    hash_ = info_hash(job)
    tracker_list = trackers(job)
    seeding_since = getattr(job, "qbt_seeding_since", None)
    return {
        "added_on": _ts(job.created_at),
        "amount_left": max(0, size - completed),
        "auto_tmm": False,
        "availability": -1 if current not in DOWNLOAD_STATES else float(job.seeds),
        "category": m.category.name if m and m.category else "",
        "completed": completed,
        "completion_on": _ts(seeding_since or (job.finished_at if job.progress >= 1 else None)),
        "content_path": content_path(job, getattr(job, "qbt_first", None), getattr(job, "qbt_last", None),
                                     getattr(job, "qbt_count", 0) or 0),
        "dl_limit": 0,
        "dlspeed": job.download_rate,
        "download_path": "",
        "downloaded": job.downloaded_bytes,
        "downloaded_session": job.downloaded_bytes,
        "eta": job.eta_seconds if current == "downloading" and job.eta_seconds is not None else MAX_ETA,
        "f_l_piece_prio": bool(m and m.first_last_piece),
        "force_start": False,
        "hash": hash_,
        "infohash_v1": hash_ if len(job.info_hash or "") == 40 else "",
        "infohash_v2": "",
        "last_activity": _ts(job.updated_at),
        "magnet_uri": magnet_uri(job),
        "max_ratio": ratio_limit,
        "max_seeding_time": minutes_limit,
        "name": job.name,
        "num_complete": job.seeds,
        "num_incomplete": max(0, job.peers - job.seeds),
        "num_leechs": max(0, job.peers - job.seeds),
        "num_seeds": job.seeds,
        "priority": priority,
        "progress": float(job.progress),
        "ratio": ratio(job),
        "ratio_limit": own_ratio,
        "save_path": save_path(job),
        "seeding_time": seeded,
        "seeding_time_limit": own_minutes,
        "seen_complete": _ts(seeding_since),
        "seq_dl": bool(m and m.sequential),
        "size": size,
        "state": current,
        "super_seeding": False,
        "tags": ", ".join(m.tags) if m else "",
        "time_active": _time_active(job),
        "total_size": job.size_bytes if job.size_bytes is not None else -1,
        "tracker": "" if job.is_private or not tracker_list else tracker_list[0],
        "trackers_count": len(tracker_list),
        "up_limit": 0,
        "uploaded": job.uploaded_bytes,
        "uploaded_session": job.uploaded_bytes,
        "upspeed": job.upload_rate,
    }


def _time_active(job: Job) -> int:
    if job.started_at is None:
        return 0
    return max(0, int(((job.finished_at or timezone.now()) - job.started_at).total_seconds()))


def torrent_list(user, jobs) -> list[dict]:
    """Rows for these jobs, oldest first as qBittorrent lists them; queued ones numbered by queue position."""
    plan = current_plan(user)
    rows, position = [], 0
    for job in annotated(jobs).order_by("id"):
        waiting = job.status in (S.QUEUED, S.WAITING, S.STARTING)
        position += waiting
        rows.append(torrent(job, plan, priority=position if waiting else 0))
    return rows


def properties(job: Job) -> dict:
    job = annotated(Job.objects.filter(pk=job.pk)).get()
    row = torrent(job, current_plan(job.user))
    pieces = _piece_info(job)
    return {
        "addition_date": row["added_on"],
        "comment": "",
        "completion_date": row["completion_on"] or -1,
        "created_by": "",
        "creation_date": -1,
        "dl_limit": -1,
        "dl_speed": job.download_rate,
        "dl_speed_avg": _avg(job.downloaded_bytes, row["time_active"]),
        "download_path": "",
        "eta": row["eta"],
        "hash": row["hash"],
        "infohash_v1": row["infohash_v1"],
        "infohash_v2": "",
        "is_private": job.is_private,
        "last_seen": row["seen_complete"] or -1,
        "name": job.name,
        "nb_connections": job.peers,
        "nb_connections_limit": 100,
        "peers": max(0, job.peers - job.seeds),
        "peers_total": max(0, job.peers - job.seeds),
        "piece_size": pieces[0],
        "pieces_have": pieces[1],
        "pieces_num": pieces[2],
        "reannounce": 0,
        "save_path": row["save_path"],
        "seeding_time": row["seeding_time"],
        "seeds": job.seeds,
        "seeds_total": job.seeds,
        "share_ratio": row["ratio"],
        "time_elapsed": row["time_active"],
        "total_downloaded": job.downloaded_bytes,
        "total_downloaded_session": job.downloaded_bytes,
        "total_size": row["total_size"],
        "total_uploaded": job.uploaded_bytes,
        "total_uploaded_session": job.uploaded_bytes,
        "total_wasted": 0,
        "up_limit": -1,
        "up_speed": job.upload_rate,
        "up_speed_avg": _avg(job.uploaded_bytes, row["time_active"]),
    }


def _avg(amount: int, seconds: int) -> int:
    return int(amount / seconds) if seconds else 0


def _piece_info(job: Job) -> tuple[int, int, int]:
    """(piece size, pieces had, pieces) from the job's .torrent when it has one; -1s before metadata as
    qBittorrent answers, and for a magnet job whose metadata stays with its backend."""
    if not job.torrent or not job.size_bytes:
        return -1, 0, -1
    try:
        info = intake._decode(intake.decode_torrent(job.torrent))[b"info"]
        piece = int(info[b"piece length"])
    except Exception:
        return -1, 0, -1
    total = -(-job.size_bytes // piece)
    return piece, int(total * job.progress) if job.progress < 1 else total, total


def files(job: Job) -> list[dict]:
    rows = []
    for f in JobFile.objects.filter(job=job).order_by("index"):
        progress = 1.0 if f.size_bytes and f.completed_bytes >= f.size_bytes else (
            f.completed_bytes / f.size_bytes if f.size_bytes else float(job.progress >= 1))
        rows.append({"availability": -1 if job.progress >= 1 else float(job.seeds), "index": f.index,
                     "is_seed": job.progress >= 1, "name": f.path, "piece_range": [0, 0], "priority": 1,
                     "progress": progress, "size": f.size_bytes})
    return rows


def tracker_rows(job: Job) -> list[dict]:
    """The three pseudo-trackers qBittorrent always lists, then the job's own (private ones by host only)."""
    rows = [{"msg": "", "num_downloaded": 0, "num_leeches": 0, "num_peers": 0, "num_seeds": 0, "status": 0,
             "tier": -1, "url": f"** [{name}] **"} for name in ("DHT", "PeX", "LSD")]
    working = job.status in (S.DOWNLOADING, S.SEEDING)
    for tier, url in enumerate(trackers(job)):
        if job.is_private:
            url = url.split("://", 1)[0] + "://" + url.split("://", 1)[-1].split("/", 1)[0] + "/"
        rows.append({"msg": "", "num_downloaded": -1, "num_leeches": -1, "num_peers": -1, "num_seeds": -1,
                     "status": 2 if working else 1, "tier": tier, "url": url})
    return rows


# --- the application ---------------------------------------------------------------------------------


@memoize
def _default_preferences() -> dict:
    return json.loads((Path(__file__).parent / "preferences-4.5.2.json").read_text())


def preferences(user) -> dict:
    """qbittorrent-nox 4.5.2's preferences, with what Flotilla really does where clients read it."""
    plan = current_plan(user)
    prefs = dict(_default_preferences())
    root = user_save_path(user.pk)
    prefs.update(
        save_path=root, temp_path=root, temp_path_enabled=False, web_ui_username=user.email,
        max_ratio_enabled=bool(plan.seed_ratio_limit), max_ratio=plan.seed_ratio_limit or -1,
        max_seeding_time_enabled=bool(plan.seed_time_limit_minutes),
        max_seeding_time=plan.seed_time_limit_minutes or -1,
        max_ratio_act=0,  # pause (never remove): the *arr apps import, then remove themselves
        queueing_enabled=False,  # dispatch order is Flotilla's (fair between users): no queue priorities
        dht=settings.ENGINE_DHT, pex=settings.ENGINE_DHT,
        torrent_content_layout="Original", auto_tmm_enabled=False,
    )
    return prefs


def categories(user) -> dict:
    return {c.name: {"name": c.name, "savePath": c.save_path} for c in QbtCategory.objects.filter(user=user)}


def transfer_info(user) -> dict:
    totals = _totals(user)
    return {"connection_status": "connected", "dht_nodes": 0, "dl_info_data": totals["dl"],
            "dl_info_speed": totals["dls"], "dl_rate_limit": 0, "up_info_data": totals["ul"],
            "up_info_speed": totals["uls"], "up_rate_limit": 0}


def _totals(user) -> dict:
    agg = Job.objects.for_user(user).aggregate(dl=Sum("downloaded_bytes"), ul=Sum("uploaded_bytes"),
                                               dls=Sum("download_rate"), uls=Sum("upload_rate"))
    return {k: int(v or 0) for k, v in agg.items()}


def server_state(user) -> dict:
    totals = _totals(user)
    ratio_text = f"{totals['ul'] / totals['dl']:.2f}" if totals["dl"] else "-"
    return {
        "alltime_dl": totals["dl"], "alltime_ul": totals["ul"], "average_time_queue": 0,
        "connection_status": "connected", "dht_nodes": 0, "dl_info_data": totals["dl"],
        "dl_info_speed": totals["dls"], "dl_rate_limit": 0, "free_space_on_disk": _free_space(),
        "global_ratio": ratio_text, "queued_io_jobs": 0, "queueing": False, "read_cache_hits": "0",
        "read_cache_overload": "0", "refresh_interval": 1500, "total_buffers_size": 0,
        "total_peer_connections": 0, "total_queued_size": 0, "total_wasted_session": 0,
        "up_info_data": totals["ul"], "up_info_speed": totals["uls"], "up_rate_limit": 0,
        "use_alt_speed_limits": False, "write_cache_overload": "0",
    }


def _free_space() -> int:
    try:
        return shutil.disk_usage(settings.DOWNLOADS_DIR if settings.DOWNLOADS_DIR.exists()
                                 else settings.DATA_DIR).free
    except OSError:
        return 0
