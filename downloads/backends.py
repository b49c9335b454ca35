"""The backend interface every download runner implements, and the registry that finds them.

A job's `backend` is a string: a kind ("engine", "seedr") or a kind and an account ("server:12").
Backends register an instance per kind in their AppConfig.ready(); views and tasks only talk to this
interface and never branch on the kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from downloads.models import Job, JobFile


class BackendError(Exception):
    """A backend could not do what was asked. `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, code: str = "backend_error", permanent: bool = False):
        super().__init__(message)
        self.message, self.code, self.permanent = message, code, permanent


class Wait(NamedTuple):
    """Why a backend cannot take a queued job yet (machine code + human sentence); the job stays queued."""

    code: str
    message: str


@dataclass(frozen=True)
class RemoteLink:
    """A file's bytes behind an HTTP(S) URL that answers Range (Seedr's file link). The URL carries the
    backend's credentials: streaming fetches it server-side and never shows it to anyone."""

    url: str


@dataclass(frozen=True)
class PieceSource:
    """A file being downloaded by a server whose disk is mapped here: `path` on the mapped disk (maybe not there
    yet), its place in the torrent's byte stream (`offset`, `piece_length`) and `pieces()`, one remote call
    that says which of the torrent's pieces are verified (streaming sends only bytes of those).

    A server may call a piece verified while its bytes are still in its write cache (Transmission's 4 MB cache,
    libtorrent 2's store buffer): with `hashes` (every piece's SHA-1) and `files` (every file of the torrent in
    order, as a mapped path and a size) a piece is also read back from the disk and checked before it is sent.
    Without them the source must be complete on disk."""

    path: Path
    size: int
    offset: int
    piece_length: int
    pieces: Callable[[], Sequence[bool]]
    hashes: Sequence[bytes] | None = None
    files: Sequence[tuple[Path, int]] = ()


StreamSource = RemoteLink | PieceSource


class Backend(ABC):
    kind: str = ""
    label: str = ""
    # A pulling backend (the built-in engine) claims queued jobs itself; the dispatcher does not submit.
    pulls_jobs: bool = False

    def available(self) -> bool:
        """Whether jobs of this kind can start now (a pulling backend: is any of its processes alive?)."""
        return True

    def group_key(self, job: Job) -> Hashable:
        """Jobs with the same key are synced by one `sync` call (one remote call per account/server)."""
        return job.backend

    def choices(self, user) -> list[tuple[str, str]]:
        """What a user may pick for this kind in the add dialog: (backend name, label) pairs. A kind with
        accounts of its own ("server:<id>") lists them; the default is the kind itself."""
        return [(self.kind, self.label or self.kind)]

    def validate_target(self, user, backend_name: str) -> None:
        """Refuse (DomainError) a backend name this user may not create jobs on, e.g. another user's server.
        Called at intake, before a job exists."""
        return None

    def may_start(self, job: Job) -> Wait | None:
        """Asked by the dispatcher before it claims a queued job (after the plan's slot check).

        Return a `Wait` to leave the job queued with that reason (a backend's own capacity: one Seedr
        download at a time per user, a server's queue); None to go ahead. Cheap checks only: it runs for
        every queued job on every dispatch. `submit` stays the authority (it may refuse transiently).
        """
        return None

    def refuses(self, job: Job) -> str | None:
        """Asked by fail-over before it moves a job here from another backend: a sentence saying why this
        backend cannot take the job at all now (not connected, disabled, too big), or None. Cheap checks."""
        return None if self.available() else f"{self.label or self.kind} is not running"

    def offline(self) -> dict[str, datetime]:
        """Backend names of this kind that do not answer, and since when (fail-over moves their jobs once the
        policy's grace time has passed). One cheap query at most; the default: never offline."""
        return {}

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Hand a queued job to the backend; move it on through the spine's services."""

    @abstractmethod
    def sync(self, jobs: Sequence[Job]) -> None:
        """Bring the state of many jobs of one group up to date with one remote call."""

    @abstractmethod
    def pause(self, job: Job) -> None: ...

    @abstractmethod
    def resume(self, job: Job) -> None: ...

    @abstractmethod
    def cancel(self, job: Job, *, delete_data: bool) -> None: ...

    @abstractmethod
    def bring_home(self, job: Job) -> None:
        """Bring the finished files into the job's folder under DATA_DIR (or map them) and register JobFiles.

        Called by the spine's one runner (`downloads.bring_home`) under the job's lease, never by a backend
        itself; it must be safe to call again after a crash (resume or redo). Raise `BackendError` with
        `permanent` saying whether another attempt can help (the runner counts attempts and backs off), or
        `downloads.runs.JobMoved` when the job left `transferring` meanwhile. Long work calls
        `downloads.runs.keep_alive()` as it goes. Returning means the files are home: the runner hands
        the job to `finish`.
        """

    def stream_source(self, job: Job, jobfile: JobFile) -> StreamSource | None:
        """Where streaming reads a file that is not complete under DATA_DIR yet (one playback request), and
        ask the backend to fetch it in playing order. None: this backend cannot stream it now. May call the
        remote side (it runs off the event loop); raise `BackendError` when that fails."""
        return None

    def abandon(self, job: Job) -> None:
        """The spine failed the job while bringing it home (permanent error, attempts exhausted): free
        what the backend still holds for it (remote copy, temporary files). Best effort; never raises."""
        return None


_registry: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if not backend.kind:
        raise ValueError("A backend needs a kind.")
    _registry[backend.kind] = backend
    return backend


def unregister(kind: str) -> None:
    _registry.pop(kind, None)


def kind_of(backend_name: str) -> str:
    return backend_name.split(":", 1)[0]


def get_backend(backend_name: str) -> Backend | None:
    return _registry.get(kind_of(backend_name))


def registered() -> dict[str, Backend]:
    return dict(_registry)


# --- start guards: rules outside the spine that a job must meet before it starts --------------------------


class Refuse(NamedTuple):
    """A guard's verdict that a queued job may never start where it is (machine code + human sentence): the
    job fails with that reason. `Wait` from a guard leaves it queued instead, and it starts on its own later."""

    code: str
    message: str


# A guard is asked about each queued job the dispatcher (or an engine) is about to start. Another app (tracker
# compliance) registers guards from its AppConfig.ready(), so the spine never imports it. Cheap checks only.
StartGuard = Callable[["Job"], "Wait | Refuse | None"]
_guards: dict[str, StartGuard] = {}


def register_guard(name: str, guard: StartGuard) -> None:
    _guards[name] = guard


def unregister_guard(name: str) -> None:
    _guards.pop(name, None)


def check_guards(job: Job) -> Wait | Refuse | None:
    """The first guard that objects to starting `job` (a `Refuse` from any guard wins over a `Wait`)."""
    verdicts = [v for guard in list(_guards.values()) if (v := guard(job)) is not None]
    refusals = [v for v in verdicts if isinstance(v, Refuse)]
    return (refusals or verdicts or [None])[0]


def keeps_seeding(job: Job) -> bool:
    """Whether a job's torrent must never stop seeding on its own (a private tracker's rules): a backend
    turns its client's own ratio/idle stop limits off for it. Asked of guards that define `keeps_seeding`."""
    return any(getattr(guard, "keeps_seeding", lambda _job: False)(job) for guard in list(_guards.values()))
