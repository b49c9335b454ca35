"""Tags and cover of the staged M4B, written with mutagen under the atoms Audiobookshelf reads (research §1.4).

mutagen cannot write chapters but keeps them on save (the chapters come from ffmpeg's remux). Only the staged
copy is ever tagged: the seeding files are never opened for writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mutagen.mp4 import MP4, AtomDataType, MP4Cover, MP4FreeForm

FREEFORM = "----:com.apple.iTunes:"


@dataclass(frozen=True)
class BookTags:
    title: str
    authors: tuple[str, ...] = ()
    narrators: tuple[str, ...] = ()
    series: str = ""
    sequence: str = ""
    year: int | None = None
    genre: str = ""
    description: str = ""
    asin: str = ""
    isbn: str = ""


def _freeform(value: str) -> list[MP4FreeForm]:
    return [MP4FreeForm(value.encode("utf-8"), AtomDataType.UTF8)]


def write(path: Path, tags: BookTags, *, cover: bytes | None) -> None:
    """Replace the file's tags with the book's (an existing embedded cover stays unless a new one is given)."""
    audio = MP4(path)
    if audio.tags is None:
        audio.add_tags()
    t = audio.tags
    old_cover = t.get("covr")
    t.clear()
    authors = ", ".join(tags.authors)
    t["©nam"] = [tags.title]
    t["©alb"] = [tags.title]
    if authors:
        t["©ART"] = [authors]
        t["aART"] = [authors]
    if tags.narrators:
        t["©wrt"] = [", ".join(tags.narrators)]  # Audiobookshelf reads narrators from the composer
    if tags.genre:
        t["©gen"] = [tags.genre]
    if tags.year:
        t["©day"] = [str(tags.year)]
    if tags.description:
        t["desc"] = [tags.description]  # Audiobookshelf reads `desc`, not `ldes`
        t["ldes"] = [tags.description]
    if tags.series:
        t["©grp"] = [f"{tags.series} #{tags.sequence}" if tags.sequence else tags.series]
        t[FREEFORM + "SERIES"] = _freeform(tags.series)
        if tags.sequence:
            t[FREEFORM + "SERIES-PART"] = _freeform(tags.sequence)
    if tags.asin:
        t[FREEFORM + "ASIN"] = _freeform(tags.asin)
    if tags.isbn:
        t[FREEFORM + "ISBN"] = _freeform(tags.isbn)
    t["stik"] = [2]  # audiobook
    if cover is not None:
        t["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_JPEG)]
    elif old_cover:
        t["covr"] = old_cover
    audio.save()


def read(path: Path) -> dict:
    """The tags as plain strings (for checks and the page)."""
    t = MP4(path).tags or {}
    out = {}
    for key, values in t.items():
        if key == "covr":
            out[key] = [bytes(v) for v in values]
        else:
            out[key] = [bytes(v).decode("utf-8") if isinstance(v, bytes | MP4FreeForm) else v for v in values]
    return out
