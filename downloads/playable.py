"""Which files a browser player is offered for: video by MIME type or extension, audio by MIME type.

It lives in the spine (below streaming/) so the dashboard can ask it in SQL; streaming/ picks the file to play
with the same rule, so a Play button never leads to "nothing to play".
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from django.db.models import Exists, OuterRef, Q

from downloads.models import JobFile

# Containers players open that `mimetypes` does not always call video/ (.ts is a Qt translation to it).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".ts", ".ogv", ".wmv", ".flv",
                              ".mpg"})


def _mime(path: str, mime: str | None) -> str:
    return (mime or mimetypes.guess_type(path)[0] or "").lower()


def is_video(path: str, mime: str | None) -> bool:
    return _mime(path, mime).startswith("video/") or PurePosixPath(path).suffix.lower() in VIDEO_EXTENSIONS


def is_audio(path: str, mime: str | None) -> bool:
    return _mime(path, mime).startswith("audio/")


def is_playable(path: str, mime: str | None) -> bool:
    return is_video(path, mime) or is_audio(path, mime)


def playable_files() -> Q:
    """The same rule as a filter on JobFile (mime_type is always set when files are registered)."""
    q = Q(mime_type__istartswith="video/") | Q(mime_type__istartswith="audio/")
    for extension in VIDEO_EXTENSIONS:
        q |= Q(path__iendswith=extension)
    return q


def has_playable_file() -> Exists:
    """Annotation for a Job queryset: one EXISTS per row, no extra query."""
    return Exists(JobFile.objects.filter(job=OuterRef("pk")).filter(playable_files()))
