"""The backend interface every download runner implements, and the registry that finds them.

A job's `backend` is a string: a kind ("engine", "seedr") or a kind and an account ("server:12").
Backends register an instance per kind in their AppConfig.ready(); views and tasks only talk to this
interface and never branch on the kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from downloads.models import Job


class BackendError(Exception):
    """A backend could not do what was asked. `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, code: str = "backend_error", permanent: bool = False):
        super().__init__(message)
        self.message, self.code, self.permanent = message, code, permanent


class Backend(ABC):
    kind: str = ""
    label: str = ""
    # A pulling backend (the built-in engine) claims queued jobs itself; the dispatcher does not submit.
    pulls_jobs: bool = False

    def group_key(self, job: Job) -> Hashable:
        """Jobs with the same key are synced by one `sync` call (one remote call per account/server)."""
        return job.backend

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
    def deliver(self, job: Job) -> None:
        """Bring the finished files into the job's folder (or map them) and register JobFiles."""


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
