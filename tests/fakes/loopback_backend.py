"""A deterministic stand-in for a remote download service, as a real `Backend` of kind "loopback".

It lets a real worker process exercise the spine (dispatch, one sync per group, progress, delivery,
events) with nothing on the network. The "remote service" keeps its own state in a JSON file
(`<state_dir>/state.json`, default `DATA_DIR/loopback/`) under an exclusive `flock`, so the web process,
every qcluster worker and the test process see the same transfers and the same call counters.

Behaviour, per call:
- `submit`: creates a transfer at 0 % and moves the job to downloading (remote_id "lb-<job id>").
  Names starting with "loopback-reject" are refused permanently (code "remote_rejected"), names starting
  with "loopback-busy" transiently (code "remote_busy") — like a payment sandbox's magic card numbers.
- `sync(jobs)`: ONE call for the whole group; each downloading transfer advances by `STEP` (25 %) and is
  recorded through `services.record_progress`; at 100 % the job takes the spine's finish line with its
  single (tiny) file brought home inline (`bring_home.complete_in_place`, after the state lock is released).
  A job in `transferring` (put there by a test through `bring_home.data_complete`) is nudged to the spine's
  bring-home runner. Paused transfers stay put; a job whose transfer is gone fails with "remote_missing".
- `pause` / `resume` / `cancel` / `bring_home` change the transfer's state for real. `bring_home` writes the
  file (refused transiently, "not_finished", until the transfer is done); in-process tests may queue errors
  for it in `bring_home_errors`, raised one per call, first.

Loading: naming this module in `EXTRA_BACKEND_MODULES` (as the e2e tests do for their subprocesses)
registers an instance when downloads/apps.py imports it. A plain import (a test importing the class)
registers nothing, so whether "loopback" exists in the test process never depends on which test modules
pytest happened to collect; in-process tests register an instance in a fixture and unregister it after.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from django.conf import settings

from downloads import backends, bring_home, services
from downloads.backends import Backend, BackendError
from downloads.models import TERMINAL, Job, Status
from downloads.paths import safe_join

log = logging.getLogger(__name__)

KIND = "loopback"
STEP = 0.25
FILE_SIZE = 64 * 1024
RATE = int(FILE_SIZE * STEP)  # bytes per sync "second", for plausible rates and ETAs
# Transfer states on the remote side.
DOWNLOADING, PAUSED, DONE = "downloading", "paused", "done"


def _empty_state() -> dict:
    return {"transfers": {}, "calls": {}, "sync_batches": [], "cancelled": []}


def content_for(remote_id: str, size: int) -> bytes:
    """The deterministic bytes of a transfer's file (a test can recompute and compare them)."""
    block = hashlib.sha256(remote_id.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def file_name(job: Job) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", job.name).strip("._")[:80] or f"job-{job.pk}"
    return f"{stem}.bin"


class LoopbackBackend(Backend):
    kind = KIND
    label = "Loopback (test service)"

    def __init__(self, state_dir: Path | str | None = None) -> None:
        self._state_dir = Path(state_dir) if state_dir else None
        self.bring_home_errors: list[BackendError] = []  # raised by the next bring_home calls (in-process)

    # --- the remote service's state ---------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self._state_dir or Path(settings.DATA_DIR) / "loopback"

    @contextlib.contextmanager
    def _remote(self, call: str | None = None) -> Iterator[dict]:
        """The service's state, locked for the whole call (calls are serialised, like one remote server)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "state.json"
        with (self.state_dir / "state.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(path.read_text()) if path.exists() else _empty_state()
            if call:
                state["calls"][call] = state["calls"].get(call, 0) + 1
            try:
                yield state
            finally:  # the remote did what it did even if our side of the call failed
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(state))
                os.replace(tmp, path)

    def snapshot(self) -> dict:
        """A copy of the remote state: transfers, `calls` per method, `sync_batches` (job ids per sync)."""
        with self._remote() as state:
            return json.loads(json.dumps(state))

    def calls(self) -> dict[str, int]:
        return self.snapshot()["calls"]

    def finish_remotely(self, job: Job) -> None:
        """The remote side finishes the transfer now (a test then drives the spine's bring-home runner)."""
        with self._remote() as state:
            transfer = self._transfer(state, job)
            transfer.update(state=DONE, progress=1.0)

    @staticmethod
    def remote_id_for(job: Job) -> str:
        return f"lb-{job.pk}"

    def _transfer(self, state: dict, job: Job) -> dict:
        transfer = state["transfers"].get(job.remote_id)
        if transfer is None:
            raise BackendError("The loopback service has no such transfer.", code="remote_missing", permanent=True)
        return transfer

    # --- the Backend interface ---------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        with self._remote("submit") as state:
            if job.name.startswith("loopback-reject"):
                raise BackendError("The loopback service refuses this torrent.", code="remote_rejected",
                                   permanent=True)
            if job.name.startswith("loopback-busy"):
                raise BackendError("The loopback service is busy; try again later.", code="remote_busy")
            remote_id = self.remote_id_for(job)
            size = job.size_bytes or FILE_SIZE
            state["transfers"][remote_id] = {"job": job.pk, "state": DOWNLOADING, "progress": 0.0, "size": size}
        services.change_status(job, Status.DOWNLOADING, remote_id=remote_id, size_bytes=size)

    def sync(self, jobs: Sequence[Job]) -> None:
        finished = []
        with self._remote("sync") as state:
            state["sync_batches"].append(sorted(job.pk for job in jobs))
            for job in jobs:
                try:
                    if self._sync_one(state, job):
                        finished.append(job)
                except services.StaleJob:
                    # The user acted on the job meanwhile (pause, cancel): the next sync sees the new state.
                    log.info("loopback sync: job changed meanwhile", extra={"job": job.pk})
        for job in finished:  # outside the state lock: bring_home takes it again
            try:
                bring_home.complete_in_place(job, reason_code="done", reason="Download complete.")
            except services.StaleJob:
                log.info("loopback sync: job changed meanwhile", extra={"job": job.pk})

    def _sync_one(self, state: dict, job: Job) -> bool:
        """Advance one job; True when its data just became complete."""
        if job.status == Status.TRANSFERRING:
            bring_home.nudge(job)
            return False
        transfer = state["transfers"].get(job.remote_id)
        if transfer is None:
            if job.status not in TERMINAL:
                services.fail(job, "remote_missing", "The loopback service no longer knows this download.")
            return False
        if transfer["state"] != DOWNLOADING or job.status == Status.PAUSED:
            return False
        if job.status != Status.DOWNLOADING:  # resumed (starting) or waiting: the remote is running it
            services.change_status(job, Status.DOWNLOADING)
        transfer["progress"] = min(1.0, round(transfer["progress"] + STEP, 4))
        size, progress = transfer["size"], transfer["progress"]
        services.record_progress(
            job, progress=progress, downloaded_bytes=int(size * progress), size_bytes=size,
            download_rate=0 if progress >= 1 else RATE, eta_seconds=round(size * (1 - progress) / RATE),
            peers=3, seeds=5,
        )
        if progress >= 1:
            transfer["state"] = DONE
            return True
        return False

    def pause(self, job: Job) -> None:
        with self._remote("pause") as state:
            transfer = self._transfer(state, job)
            if transfer["state"] == DOWNLOADING:
                transfer["state"] = PAUSED

    def resume(self, job: Job) -> None:
        with self._remote("resume") as state:
            transfer = self._transfer(state, job)
            if transfer["state"] == PAUSED:
                transfer["state"] = DOWNLOADING

    def cancel(self, job: Job, *, delete_data: bool) -> None:
        with self._remote("cancel") as state:
            if state["transfers"].pop(job.remote_id, None) is not None:
                state["cancelled"].append({"job": job.pk, "delete_data": delete_data})

    def bring_home(self, job: Job) -> None:
        if self.bring_home_errors:
            raise self.bring_home_errors.pop(0)
        with self._remote("bring_home") as state:
            transfer = self._transfer(state, job)
            if transfer["state"] != DONE:
                raise BackendError("The download is not finished yet.", code="not_finished")
            self._write_file(job, transfer)

    def _write_file(self, job: Job, transfer: dict) -> None:
        """Bring the finished file into the job's folder and register it (a JobFile + a "files" event)."""
        name = file_name(job)
        target = safe_join(job.data_dir, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content_for(job.remote_id, transfer["size"]))
        services.register_files(job, [(name, transfer["size"], 0)])
        services.update_file_progress(job, {0: transfer["size"]})


def _named_in_settings() -> bool:
    return __name__ in getattr(settings, "EXTRA_BACKEND_MODULES", [])


if _named_in_settings():
    backends.register(LoopbackBackend())
