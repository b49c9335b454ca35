"""The engine process: one libtorrent session kept in step with the database.

The job row is the command channel. Every ENGINE_POLL_INTERVAL the engine reads the jobs it holds and
applies what users asked for (pause, resume, cancel, delete) to the session, then claims queued jobs while
it has room. Once a second it reports every torrent's numbers through the spine's services (which coalesce
the events). Resume data is saved every ENGINE_RESUME_SAVE_INTERVAL and on shutdown, one file per job, so
after a crash (or on another engine) a job continues from its verified pieces.

Everything runs on one thread: libtorrent does its networking and disk I/O on its own threads and talks to
us through alerts, which this loop pops between database steps.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libtorrent as lt
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from billing.models import Plan
from billing.services import current_plan
from downloads import bring_home, heartbeats, intake, services
from downloads.backends import keeps_seeding
from downloads.engine import claims, streams
from downloads.engine.config import idle_seconds, seeding_done, session_settings
from downloads.engine.resume import ResumeDecryptionError, ResumeStore
from downloads.models import TERMINAL, IllegalTransition, Job, JobFile, Status, can_transition
from downloads.paths import UnsafePath
from downloads.qbittorrent_api.services import seeding_limits

log = logging.getLogger(__name__)

REPORT_INTERVAL = 1.0
SHUTDOWN_SAVE_TIMEOUT = 10.0
RESUME_PRUNE_INTERVAL = 3600.0  # resume files of jobs that ended while no engine held them
# libtorrent states in which the torrent is checking its files: the job keeps the status it had.
_CHECKING = {lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data,
             lt.torrent_status.allocating}


class EngineAlreadyRunning(RuntimeError):
    pass


def torrent_key(hashes) -> str:
    """A torrent's id as the spine stores it: the v1 info-hash when there is one, else the v2 one."""
    return str(hashes.v1) if hashes.has_v1() else str(hashes.v2)


@dataclass
class Torrent:
    """A job in the session, with what the engine remembers about it between ticks."""

    job: Job
    handle: lt.torrent_handle
    key: str
    paused: bool = False
    metadata_done: bool = False
    # Finished in libtorrent is not yet on disk: its last blocks may still sit in the disk cache. The job
    # says "seeding" (files complete, downloadable) only after a flush_cache() round trip.
    flushed: bool = False
    flushing: bool = False
    check_quota: bool = True  # a fresh start (no resume data): the size is checked against the plan once
    file_map: dict[int, int] = field(default_factory=dict)  # libtorrent file index → JobFile.index
    last_files: list[int] | None = None
    last_numbers: tuple | None = None
    plan: Plan | None = None
    keeps_seeding: bool | None = None  # a start guard's say (a private tracker's job), asked once
    seeded_seconds: int = 0  # libtorrent's seeding_duration (kept in the resume data across restarts)


class Engine:
    def __init__(self, name: str | None = None, *, state_dir: Path | None = None):
        self.name = name or settings.ENGINE_NAME
        self.state_dir = Path(state_dir or settings.ENGINE_STATE_DIR)
        self.resume = ResumeStore(self.state_dir / "resume")
        self.torrents: dict[int, Torrent] = {}
        self.by_key: dict[str, int] = {}
        self.session: lt.session | None = None
        self._stop = threading.Event()
        self._next: dict[str, float] = {}
        self._saving: set[int] = set()  # jobs whose resume data was asked for and not written yet
        self._deleting: dict[str, Path] = {}  # torrents removed with their files → folder to clear after
        self._lock_file = None
        self.streams: streams.StreamServer | None = None  # the web's channel for streaming while downloading
        self.beat_interval = max(0.5, min(5.0, settings.ENGINE_HEARTBEAT_TIMEOUT / 4))

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._take_name_lock()
        self.session = lt.session(session_settings())
        self.streams = streams.start_server(self)
        log.info("engine started", extra={"engine": self.name, "libtorrent": lt.__version__,
                                          "listen_port": self.session.listen_port()})
        self._beat()
        self.reconcile()

    def run(self) -> None:
        """Run until `stop()` (SIGTERM/SIGINT in `runengine`); always shuts down cleanly."""
        self.start()
        try:
            while not self._stop.is_set():
                self.tick()
                if self._due("connections", 30.0):
                    close_old_connections()  # a long-lived process: drop connections the server gave up on
        finally:
            self.shutdown()

    def stop(self, *_args) -> None:
        self._stop.set()

    def tick(self, wait: float = 0.1) -> None:
        """One turn of the loop: alerts, then whichever periodic steps are due."""
        self.session.wait_for_alert(int(wait * 1000))
        self.handle_alerts()
        if self._due("reconcile", settings.ENGINE_POLL_INTERVAL):
            self._guarded(self.reconcile)
        if self._due("report", REPORT_INTERVAL):
            self._guarded(self.report)
        if self._due("resume", settings.ENGINE_RESUME_SAVE_INTERVAL):
            self.save_resume_data(only_if_needed=True)
        if self._due("beat", self.beat_interval):
            self._guarded(self._beat)
        if self._due("orphans", self.beat_interval * 2):
            self._guarded(lambda: claims.requeue_orphans(self.name))
        if self._due("prune_resume", RESUME_PRUNE_INTERVAL):
            self._guarded(self.prune_resume_files)

    def shutdown(self) -> None:
        """Pause everything, write every torrent's resume data, then let the session go."""
        if self.session is None:
            return
        if self.streams is not None:
            self.streams.stop()
            self.streams = None
        self.session.pause()
        self.save_resume_data(only_if_needed=False)
        self._wait_for_saves(SHUTDOWN_SAVE_TIMEOUT)
        log.info("engine stopped", extra={"engine": self.name, "torrents": len(self.torrents)})
        self.session = None
        self.torrents.clear()
        self.by_key.clear()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _take_name_lock(self) -> None:
        """Two processes under one name would fight over the same jobs: the second one refuses to start."""
        locks = self.state_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        handle = (locks / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise EngineAlreadyRunning(f"An engine named {self.name!r} is already running on this host; "
                                       "give this one another ENGINE_NAME.") from None
        self._lock_file = handle

    def _due(self, what: str, every: float) -> bool:
        now = time.monotonic()
        if now < self._next.get(what, 0.0):
            return False
        self._next[what] = now + every
        return True

    def _guarded(self, step: Callable[[], object]) -> None:
        """A database hiccup skips one step instead of killing the engine (and every download with it)."""
        try:
            step()
        except DatabaseError:
            log.warning("engine step failed on the database; retrying next tick", exc_info=True)
            connection.close()
        except Exception:
            log.exception("engine step failed")

    def _beat(self) -> None:
        down = up = 0
        counts = {"downloading": 0, "seeding": 0, "paused": 0}
        for t in self.torrents.values():
            if t.paused:
                counts["paused"] += 1
            elif t.job.status == Status.SEEDING:
                counts["seeding"] += 1
            else:
                counts["downloading"] += 1
            down += t.job.download_rate
            up += t.job.upload_rate
        heartbeats.beat(
            "engine", name=self.name, torrents=len(self.torrents), **counts, download_rate=down, upload_rate=up,
            listen_port=self.session.listen_port() if self.session else None, libtorrent=lt.__version__,
            stream_address=self.streams.address if self.streams else None,
            seeding_seconds={str(t.job.pk): t.seeded_seconds for t in self.torrents.values() if t.keeps_seeding},
        )

    # --- keeping the session in step with the database -------------------------------------------------

    def reconcile(self) -> None:
        jobs = {job.pk: job for job in claims.owned_by(self.name)}
        for job_id in set(self.torrents) - set(jobs):
            self._drop(job_id)
        for job_id, job in jobs.items():
            torrent = self.torrents.get(job_id)
            if torrent is None:
                self._add(job)
            else:
                torrent.job = job
                self._apply_pause(torrent)
        room = settings.ENGINE_MAX_TORRENTS - len(self.torrents)
        if room > 0:
            busy = frozenset(t.job.info_hash_hmac for t in self.torrents.values())
            for job in claims.claim_queued(self.name, room, busy_hashes=busy):
                self._add(job)

    def _add(self, job: Job) -> None:
        try:
            params, from_resume = self._add_params(job)
        except (RuntimeError, ValueError, intake.IntakeError) as exc:
            self._fail(job, "torrent_invalid", f"The engine could not read this torrent ({exc}).")
            return
        params.save_path = str(job.data_dir)
        params.flags &= ~lt.torrent_flags.auto_managed  # Flotilla decides what runs, not libtorrent's queue
        params.flags &= ~lt.torrent_flags.paused
        params.flags |= lt.torrent_flags.duplicate_is_error
        if job.status == Status.PAUSED:
            params.flags |= lt.torrent_flags.paused
        job.data_dir.mkdir(parents=True, exist_ok=True)
        needs_metadata = params.ti is None
        try:
            handle = self.session.add_torrent(params)
        except RuntimeError as exc:
            self._fail(job, "torrent_invalid", f"The engine could not start this torrent ({exc}).")
            return
        torrent = Torrent(job, handle, torrent_key(handle.info_hashes()), paused=job.status == Status.PAUSED,
                          check_quota=not from_resume)
        self.torrents[job.pk] = torrent
        self.by_key[torrent.key] = job.pk
        log.info("torrent added", extra={"job": job.pk, "engine": self.name, "resumed": from_resume})
        if needs_metadata and job.status == Status.STARTING:
            # Said before looking: on a busy host a nearby peer can hand over the metadata before this thread
            # runs again, and the timeline must still show the step the job went through.
            self._move(torrent, Status.FETCHING_METADATA, "metadata", "Fetching the torrent's metadata from peers.")
        if handle.status().has_metadata:
            self._on_metadata(torrent)

    def _add_params(self, job: Job) -> tuple[lt.add_torrent_params, bool]:
        """Resume data when there is any (keeps verified pieces), else the .torrent, else the magnet."""
        try:
            data = self.resume.read(job.pk)
        except ResumeDecryptionError:
            # Not fatal: libtorrent checks the files already on disk, so only unverified pieces come again.
            log.warning("resume data cannot be decrypted (was a FIELD_ENCRYPTION_KEY removed?); starting from "
                        "the torrent", extra={"job": job.pk})
            data = None
        if data:
            try:
                return lt.read_resume_data(data), True
            except RuntimeError:
                log.warning("unreadable resume data; starting from the torrent", extra={"job": job.pk})
        if job.torrent:
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(intake.decode_torrent(job.torrent))
            return params, False
        if job.magnet:
            return lt.parse_magnet_uri(job.magnet), False
        raise ValueError("the job has neither a magnet nor a .torrent")

    def _apply_pause(self, torrent: Torrent) -> None:
        want_paused = torrent.job.status == Status.PAUSED
        if want_paused and not torrent.paused:
            torrent.handle.pause()
            torrent.paused = True
            self._request_save(torrent)
            services.record_progress(torrent.job, download_rate=0, upload_rate=0, eta_seconds=None, peers=0,
                                     seeds=0)
            log.info("torrent paused", extra={"job": torrent.job.pk})
        elif not want_paused and torrent.paused:
            torrent.handle.resume()
            torrent.paused = False
            torrent.last_numbers = None
            log.info("torrent resumed", extra={"job": torrent.job.pk})

    def _drop(self, job_id: int) -> None:
        """The job left this engine (cancelled, deleted, finished elsewhere, requeued): take it out."""
        torrent = self.torrents[job_id]
        row = Job.objects.filter(pk=job_id).values("status", "data_deleted_at").first()
        delete_files = row is None or row["data_deleted_at"] is not None
        if row is not None and row["status"] not in TERMINAL and not delete_files:
            # Requeued (another engine continues it): hand over up-to-date resume data first.
            self._request_save(torrent)
            self._wait_for_saves(SHUTDOWN_SAVE_TIMEOUT)
        self._forget(torrent, delete_files=delete_files, keep_resume=row is not None and row["status"] not in TERMINAL)
        log.info("torrent removed", extra={"job": job_id, "delete_files": delete_files})

    # --- metadata, progress and the end of a download ---------------------------------------------------

    def _on_metadata(self, torrent: Torrent) -> None:
        if torrent.metadata_done:
            return
        job = torrent.job
        info = torrent.handle.torrent_file()
        try:
            # The raw info dictionary, validated like an upload: names that would leave the job folder are
            # refused here (libtorrent would silently rename them).
            parsed = intake.parse_metadata(info.info_section())
        except intake.IntakeError as exc:
            self._fail(job, exc.code, exc.detail, torrent=torrent, delete_files=True)
            return
        if torrent.check_quota and not services.set_size(job, parsed.size):
            self._forget(torrent, delete_files=True)  # set_size failed the job and removed its data
            return
        try:
            self._register_files(torrent, info)
        except UnsafePath as exc:
            self._fail(job, "torrent_unsafe_path", exc.detail, torrent=torrent, delete_files=True)
            return
        torrent.metadata_done = True
        self._request_save(torrent)  # a magnet's metadata now survives a restart
        if job.ephemeral and self.streams is not None:  # "play without downloading": the player comes next
            # Before the job says "downloading": from then on, its first pieces are the head and the tail.
            self.streams.streams.play_first(job.pk)
        if job.status in (Status.STARTING, Status.FETCHING_METADATA):
            self._move(torrent, Status.DOWNLOADING, "downloading", "Downloading.")

    def _register_files(self, torrent: Torrent, info: lt.torrent_info) -> None:
        """JobFiles from libtorrent's file list (pad files left out); indexes mapped by path."""
        storage = info.layout()
        entries = {
            storage.file_path(i): (i, storage.file_size(i))
            for i in range(storage.num_files())
            if not storage.file_flags(i) & storage.flag_pad_file
        }
        known = dict(JobFile.objects.filter(job=torrent.job).values_list("path", "index"))
        if not known:
            services.register_files(torrent.job, [(path, size, i) for path, (i, size) in entries.items()])
            known = {path: i for path, (i, _) in entries.items()}
        torrent.file_map = {entries[path][0]: index for path, index in known.items() if path in entries}

    def report(self) -> None:
        for torrent in list(self.torrents.values()):
            # StaleJob: the user acted meanwhile; the next reconcile brings the new status.
            with contextlib.suppress(services.StaleJob, IllegalTransition):
                self._report_one(torrent)

    def _report_one(self, torrent: Torrent) -> None:
        if torrent.paused or torrent.job.pk not in self.torrents:
            return
        st = torrent.handle.status()
        if st.errc.value():
            self._fail(torrent.job, "engine_error", f"The engine stopped this download: {st.errc.message()}.",
                       torrent=torrent, delete_files=False)
            return
        if st.has_metadata and not torrent.metadata_done:
            self._on_metadata(torrent)
            if torrent.job.pk not in self.torrents:
                return
        self._follow_state(torrent, st)
        self._record_numbers(torrent, st)
        if torrent.job.status == Status.SEEDING:
            self._check_seeding(torrent, st)

    def _follow_state(self, torrent: Torrent, st) -> None:
        if not st.has_metadata:
            target = Status.FETCHING_METADATA
        elif st.state in _CHECKING:
            return
        elif st.is_seeding or st.is_finished:
            if not torrent.flushed:
                if not torrent.flushing:
                    torrent.handle.flush_cache()  # answered by cache_flushed_alert
                    torrent.flushing = True
                return
            target = Status.SEEDING
        else:
            torrent.flushed = torrent.flushing = False
            target = Status.DOWNLOADING
        if target == Status.SEEDING and torrent.job.status != Status.SEEDING:
            self._move(torrent, target, "seeding", "Downloaded; seeding within your plan's limits.")
            self._request_save(torrent)
        elif target != Status.SEEDING:
            self._move(torrent, target, target, "Downloading." if target == Status.DOWNLOADING else
                       "Fetching the torrent's metadata from peers.")

    def _record_numbers(self, torrent: Torrent, st) -> None:
        wanted, done = st.total_wanted, st.total_wanted_done
        rate = st.download_payload_rate
        numbers = {
            "progress": round(st.progress, 4),
            "downloaded_bytes": done,
            "uploaded_bytes": st.all_time_upload,
            "download_rate": rate,
            "upload_rate": st.upload_payload_rate,
            "eta_seconds": int((wanted - done) / rate) if rate and wanted > done else None,
            "peers": st.num_peers,
            "seeds": st.num_seeds,
        }
        if st.has_metadata:
            numbers["size_bytes"] = wanted
        key = tuple(numbers.values())
        if key != torrent.last_numbers:  # an idle seed costs no writes
            services.record_progress(torrent.job, **numbers)
            torrent.last_numbers = key
        if torrent.file_map and (torrent.flushed or not st.is_finished):
            progress = torrent.handle.file_progress(flags=lt.torrent_handle.piece_granularity)
            if progress != torrent.last_files:
                services.update_file_progress(
                    torrent.job, {index: progress[i] for i, index in torrent.file_map.items() if i < len(progress)}
                )
                torrent.last_files = progress

    def _check_seeding(self, torrent: Torrent, st) -> None:
        """Seed until the first limit the plan sets is reached, or until nobody wanted data for
        SEED_IDLE_MINUTES (the rule: downloads/engine/config.py `seeding_done`). A job whose tracker's rules
        govern its seeding (backends.keeps_seeding) never stops on the plan's limits."""
        torrent.seeded_seconds = int(st.seeding_duration.total_seconds())
        if torrent.keeps_seeding is None:
            torrent.keeps_seeding = keeps_seeding(torrent.job)
        if torrent.keeps_seeding:
            return  # the heartbeat reports its seeding time to the tracker's ledger (audiobooks.compliance)
        plan = torrent.plan = torrent.plan or current_plan(torrent.job.user)
        # The plan's limits, tightened by the job's own where a qBittorrent client set them (setShareLimits).
        ratio_limit, minutes_limit = seeding_limits(torrent.job, plan)
        seeded = st.seeding_duration.total_seconds()
        why = seeding_done(
            ratio_limit=ratio_limit, time_limit_minutes=minutes_limit,
            ratio=st.all_time_upload / max(1, st.total_wanted), seeded_seconds=seeded,
            idle_seconds=idle_seconds(st.last_upload, seeded), private=torrent.job.is_private,
        )
        if why:
            self._complete(torrent, why)

    def _complete(self, torrent: Torrent, why: str) -> None:
        """Seeding is over: the torrent leaves the session and the job takes the finish line (files in place)."""
        bring_home.complete_in_place(torrent.job, reason_code="done", reason=f"Complete ({why}).",
                                     event_data={"ratio_reason": why}, progress=1.0)
        self._forget(torrent, delete_files=False)
        log.info("torrent complete", extra={"job": torrent.job.pk, "why": why})

    # --- helpers --------------------------------------------------------------------------------------

    def _move(self, torrent: Torrent, target: str, code: str, reason: str) -> None:
        if torrent.job.status != target and can_transition(torrent.job.status, target):
            services.change_status(torrent.job, target, reason_code=code, reason=reason)

    def _fail(self, job: Job, code: str, message: str, *, torrent: Torrent | None = None,
              delete_files: bool = False) -> None:
        with contextlib.suppress(services.StaleJob, IllegalTransition):
            services.fail(job, code, message)
        if delete_files:
            services.remove_job_data(job, reason_code=code, reason="Partial files removed: " + message)
        if torrent is not None:
            self._forget(torrent, delete_files=delete_files)

    def _forget(self, torrent: Torrent, *, delete_files: bool, keep_resume: bool = False) -> None:
        """Take a torrent out of the session and out of our books (deleted files: its folder goes too)."""
        self.torrents.pop(torrent.job.pk, None)
        self.by_key.pop(torrent.key, None)
        self._saving.discard(torrent.job.pk)
        if delete_files:
            # libtorrent deletes what it wrote; the folder itself is cleared on torrent_deleted_alert.
            self._deleting[torrent.key] = torrent.job.data_dir
            self.session.remove_torrent(torrent.handle, lt.session.delete_files)
        else:
            self.session.remove_torrent(torrent.handle)
        if not keep_resume:
            self.resume.delete(torrent.job.pk)

    # --- resume data and alerts ---------------------------------------------------------------------

    def prune_resume_files(self) -> list[int]:
        """Forget the resume data of jobs that were deleted or ended while no engine held them (say, deleted
        while every engine was down): nothing else would ever remove those files. Returns their job ids."""
        stored = self.resume.job_ids()
        alive = set(Job.objects.filter(pk__in=stored).exclude(status__in=TERMINAL).values_list("pk", flat=True))
        gone = [job_id for job_id in stored if job_id not in alive]
        for job_id in gone:
            self.resume.delete(job_id)
        temporaries = self.resume.remove_stale_temporaries()
        if gone or temporaries:
            log.info("resume data pruned", extra={"engine": self.name, "jobs": gone, "temporaries": temporaries})
        return gone

    def save_resume_data(self, *, only_if_needed: bool) -> None:
        for torrent in self.torrents.values():
            if not only_if_needed or torrent.handle.need_save_resume_data():
                self._request_save(torrent)

    def _request_save(self, torrent: Torrent) -> None:
        if torrent.handle.is_valid() and torrent.handle.status().has_metadata:
            torrent.handle.save_resume_data(lt.save_resume_flags_t.save_info_dict)
            self._saving.add(torrent.job.pk)

    def _wait_for_saves(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._saving and time.monotonic() < deadline:
            self.session.wait_for_alert(100)
            self.handle_alerts()
        if self._saving:
            log.warning("resume data not written in time", extra={"jobs": sorted(self._saving)})
            self._saving.clear()

    def handle_alerts(self) -> None:
        for alert in self.session.pop_alerts():
            try:
                self._on_alert(alert)
            except (services.StaleJob, IllegalTransition):
                pass
            except DatabaseError:
                log.warning("alert not handled: database error", exc_info=True)
                connection.close()

    def _job_id(self, alert) -> int | None:
        """The job an alert is about (None for session alerts and torrents we no longer hold)."""
        handle = getattr(alert, "handle", None)
        if handle is None or not handle.is_valid():
            return None
        return self.by_key.get(torrent_key(handle.info_hashes()))

    def _on_alert(self, alert) -> None:
        if isinstance(alert, lt.save_resume_data_alert):
            job_id = self._resume_job_id(alert)
            if job_id is not None:
                self.resume.write(job_id, lt.write_resume_data_buf(alert.params))
        elif isinstance(alert, lt.save_resume_data_failed_alert):
            self._resume_job_id(alert)
        elif isinstance(alert, lt.cache_flushed_alert):
            job_id = self._job_id(alert)
            if job_id in self.torrents:
                torrent = self.torrents[job_id]
                torrent.flushed, torrent.flushing = torrent.flushing, False
                with contextlib.suppress(services.StaleJob, IllegalTransition):
                    self._report_one(torrent)
        elif isinstance(alert, lt.torrent_finished_alert):
            job_id = self._job_id(alert)
            if job_id in self.torrents:  # say "seeding" now rather than at the next report tick
                with contextlib.suppress(services.StaleJob, IllegalTransition):
                    self._report_one(self.torrents[job_id])
        elif isinstance(alert, lt.metadata_received_alert):
            job_id = self._job_id(alert)
            if job_id in self.torrents:
                self._on_metadata(self.torrents[job_id])
        elif isinstance(alert, lt.torrent_deleted_alert | lt.torrent_delete_failed_alert):
            folder = self._deleting.pop(torrent_key(alert.info_hashes), None)
            if folder is not None:
                services.remove_tree(folder)
        elif isinstance(alert, lt.file_error_alert):
            job_id = self._job_id(alert)
            if job_id in self.torrents:
                torrent = self.torrents[job_id]
                self._fail(torrent.job, "engine_error", f"Disk error on {alert.filename()}: {alert.message()}",
                           torrent=torrent)
        elif isinstance(alert, lt.listen_failed_alert):
            log.error("engine cannot listen", extra={"detail": alert.message()})
        elif alert.category() & lt.alert_category.error:
            log.info("libtorrent", extra={"alert": type(alert).__name__, "detail": alert.message()})

    def _resume_job_id(self, alert) -> int | None:
        """The job of a resume-data alert; it is no longer waited for."""
        job_id = self._job_id(alert)
        self._saving.discard(job_id)
        return job_id
