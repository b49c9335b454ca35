"""Making and publishing one book: checking → merging n/N → tagging → publishing (→ asking Audiobookshelf to
scan). Restartable from the start: a run first clears what an earlier run of the job left in staging.

Reads only from the job's folder; everything written goes to a dot-named staging folder inside the user's
library and becomes visible by one rename. A failure raises `BookError` (with a code) and leaves the
download as it was.
"""

from __future__ import annotations

import errno
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from audiobooks import library, media, merge, tags
from audiobooks.merge import Book, BookError, Track

COVER_NAMES = re.compile(r"^(cover|folder|front)\.[^./]*$", re.IGNORECASE)


@dataclass
class Outcome:
    folder: Path
    book: Book
    warnings: list[str]


class Steps:
    """Progress in one number for the spine (`report.progress`) and by step for the audiobook's row."""

    def __init__(self, tell: Callable[[str, int, int, int, int], None]) -> None:
        self.tell, self.files = tell, 1

    def __call__(self, step: str, done: int, total: int) -> None:
        self.files = max(total, 1) if step in ("checking", "merging") else self.files
        offset = {"checking": 0, "merging": self.files, "tagging": 2 * self.files,
                  "publishing": 2 * self.files + 1}[step]
        self.tell(step, done, total, offset + (done if step in ("checking", "merging") else 0),
                  2 * self.files + 2)


def make_book(*, source: Path, library_root: Path, job_id: int, meta: dict, steps: Steps,
              tick: Callable[[], None], accept_damaged: bool, keep_both: bool,
              tracker_cover: Callable[[], bytes | None] | None = None) -> Outcome:
    """Merge the audio under `source` into `<library_root>/<Author>/…/Title.m4b` with tags, cover and
    description. `meta` holds the request's fields (title, authors, …); empty ones come from the tags.
    `tracker_cover` fetches the tracker's cover, asked only when the download has none."""
    if not source.is_dir():
        raise BookError("The download's files are gone.", code="files_missing")
    tracks, warnings = merge.check(source, steps, accept_damaged=accept_damaged)
    book_tags = _book_tags(meta, tracks, fallback_title=source.name)
    parts = library.book_parts(library.Naming(book_tags.title, book_tags.authors, book_tags.narrators,
                                              book_tags.series, book_tags.sequence, book_tags.year))
    staging = library.staging_dir(library_root, job_id)
    try:
        folder = staging / "book"
        folder.mkdir()
        out = folder / parts[-1]
        work = staging / "work"
        work.mkdir()
        _check_space(library_root, tracks)
        if merge.is_ready_m4b(tracks):
            steps("merging", 0, 1)
            book = merge.copy_ready(tracks[0], out, tick=tick)
            steps("merging", 1, 1)
        else:
            book = merge.merge(tracks, work, out, title=book_tags.title, progress=steps, tick=tick,
                               accept_damaged=accept_damaged)
        warnings += book.warnings
        steps("tagging", 0, 1)
        cover = _cover(source, tracks, work, warnings, tracker_cover)
        tags.write(out, book_tags, cover=cover)
        if cover:
            (folder / "cover.jpg").write_bytes(cover)
        if book_tags.description:
            (folder / "desc.txt").write_text(book_tags.description, encoding="utf-8")
        shutil.rmtree(work)
        steps("publishing", 0, 1)
        published = library.publish(library_root, folder, parts, keep_both=keep_both)
        steps("publishing", 1, 1)
        return Outcome(published, book, warnings)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise BookError("The library's disk is full; nothing was published.", code="disk_full") from exc
        raise
    except media.MediaError as exc:
        raise BookError(exc.message, code=exc.code) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetched(tracker_cover: Callable[[], bytes | None] | None, work: Path) -> Path | None:
    """The tracker's cover in the work folder, named with no image extension: its content, not a name the
    tracker chose, picks the decoder (among the image whitelist)."""
    data = tracker_cover() if tracker_cover else None
    if not data:
        return None
    path = work / "tracker-cover.bin"
    path.write_bytes(data)
    return path


def _check_space(root: Path, tracks: list[Track]) -> None:
    """Refuse early when the library's filesystem cannot hold the estimated book (and then some)."""
    _, _, bitrate = merge.output_format(tracks)
    needed = int(sum(t.probe.duration for t in tracks) * bitrate / 8 * 1.1) + settings.AUDIOBOOK_COVER_MAX_BYTES
    free = shutil.disk_usage(root).free
    if free < needed:
        raise BookError(f"The library has {free // 2**20} MiB free; the book needs about {needed // 2**20} MiB.",
                        code="disk_full")


def _first(values: list[str]) -> str:
    return next((v for v in values if v), "")


def _names(value: str) -> tuple[str, ...]:
    """Several names in one tag: split on `;`, `/`, `&` and "and" (a "Last, First" stays one name)."""
    return tuple(n.strip() for n in re.split(r"\s*(?:;|/|&|\band\b)\s*", value) if n.strip()) if value else ()


def _book_tags(meta: dict, tracks: list[Track], *, fallback_title: str) -> tags.BookTags:
    """The request's metadata, each empty field filled from the first file's tags."""
    first = tracks[0].probe
    year = meta.get("year")
    if not year:
        match = re.match(r"\s*(\d{4})", first.tag("date", "year"))
        year = int(match.group(1)) if match else None
    return tags.BookTags(
        title=(meta.get("title") or first.tag("album") or fallback_title).strip(),
        authors=tuple(meta.get("authors") or _names(first.tag("album_artist", "artist"))),
        narrators=tuple(meta.get("narrators") or _names(first.tag("composer"))),
        series=meta.get("series") or "", sequence=meta.get("sequence") or "", year=year,
        genre=meta.get("genre") or first.tag("genre"),
        description=meta.get("description") or first.tag("description", "comment"),
        asin=meta.get("asin") or first.tag("asin"), isbn=meta.get("isbn") or first.tag("isbn"),
    )


def _cover(source: Path, tracks: list[Track], work: Path, warnings: list[str],
           tracker_cover: Callable[[], bytes | None] | None = None) -> bytes | None:
    """cover/folder/front.* in the download, else any image, else the first file's embedded picture, else the
    tracker's cover; refused above AUDIOBOOK_COVER_MAX_PIXELS (read from the header, before any decoding),
    decoded and re-encoded as a JPEG scaled to AUDIOBOOK_COVER_MAX_PX, dropped above the byte cap."""
    images = sorted((p for p in media.walk_files(source) if p.suffix.lower() in merge.IMAGE_EXTENSIONS),
                    key=lambda p: (not COVER_NAMES.match(p.name), len(p.parts), merge.natural_key(p.name)))
    out = work / "cover.jpg"
    try:
        if tracks[0].probe.has_cover and not images:
            media.cover_jpeg(tracks[0].path, out, max_px=settings.AUDIOBOOK_COVER_MAX_PX, from_audio=True)
        else:
            image = images[0] if images else _fetched(tracker_cover, work)
            if image is None:
                return None
            width, height = media.image_size(image)
            if width * height > settings.AUDIOBOOK_COVER_MAX_PIXELS:
                warnings.append(f"cover left out: {width}x{height} px is too large")
                return None
            media.cover_jpeg(image, out, max_px=settings.AUDIOBOOK_COVER_MAX_PX)
    except media.MediaError as exc:
        warnings.append(f"cover left out: {exc.message}")
        return None
    data = out.read_bytes()
    if len(data) > settings.AUDIOBOOK_COVER_MAX_BYTES:
        warnings.append(f"cover left out: {len(data)} bytes after scaling")
        return None
    return data
