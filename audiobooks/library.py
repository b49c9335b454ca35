"""Where a book goes in a user's Audiobookshelf library, and putting it there atomically.

Layout (Audiobookshelf parses the last three folders, docs/research §1.2):
`<Author>/<Series>/Vol. N - YYYY - Title {Narrator}/Title.m4b`, or without a series
`<Author>/YYYY - Title {Narrator}/Title.m4b`; `Vol. N` never without a series folder above it (it would
become the title). Each component is sanitised on its own. The book is built in `<library>/.staging-…`
(Audiobookshelf ignores dot-paths; same filesystem, so the final step is one `rename`) and renamed into
place; an existing book folder is never replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

MAX_COMPONENT_BYTES = 255
STAGING_PREFIX = ".staging-"
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\u00a0]+")  # a no-break space is kept: _unambiguous


class LibraryError(Exception):
    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message, self.code = message, code


def sanitise(name: str, *, fallback: str = "Unknown", max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """One path component: no `/`, `\\`, NUL or control characters, no leading dot, no trailing dot or
    space, at most `max_bytes` of UTF-8 (cut on a character boundary), never `.`/`..`/empty."""
    text = _SPACES.sub(" ", _UNSAFE.sub("_", name)).strip()
    text = text.lstrip(".").strip()
    encoded = text.encode("utf-8")[:max_bytes]
    text = encoded.decode("utf-8", errors="ignore").rstrip(". ")
    return text or fallback


def _sequence(value: str) -> str:
    """'1', '3.5', '01' → as Audiobookshelf reads them back ('01' → '1'); anything else is dropped."""
    match = re.fullmatch(r"\s*0*(\d+(?:\.\d+)?)\s*", value or "")
    return match.group(1) if match else ""


@dataclass(frozen=True)
class Naming:
    title: str
    authors: tuple[str, ...] = ()
    narrators: tuple[str, ...] = ()
    series: str = ""
    sequence: str = ""
    year: int | None = None


def book_parts(meta: Naming) -> list[str]:
    """The folder components under the library, then the file name, all sanitised."""
    title = meta.title.strip() or "Untitled"
    # ABS splits authors on , ; & and "and": join several with " & " (a "Last, First" stays one author).
    author = sanitise(" & ".join(a.strip() for a in meta.authors if a.strip()), fallback="Unknown Author")
    narrator = ", ".join(n.strip() for n in meta.narrators if n.strip())
    leaf = _unambiguous(title)
    if meta.year:
        leaf = f"{meta.year} - {leaf}"
    sequence = _sequence(meta.sequence)
    series = meta.series.strip()
    if series and sequence:
        leaf = f"Vol. {sequence} - {leaf}"
    # The ASIN stays in the tags: its place relative to `{Narrator}` in a folder name is not documented.
    folder = _with_suffix(leaf, narrator.replace("{", "(").replace("}", ")"))
    file_name = sanitise(title, fallback="Untitled", max_bytes=MAX_COMPONENT_BYTES - len(".m4b")) + ".m4b"
    parts = [author]
    if series:
        parts.append(sanitise(series, fallback="Series"))
    return [*parts, folder, file_name]


# What Audiobookshelf would read off the front of a title folder as a year (`2001 - …`) or a sequence (`12 - …`,
# `12. …`, `Book 3 …`): its own patterns (tests/fakes/audiobookshelf_fake.py ports its parser), and the
# braces/brackets it would take as `{narrator}` or `[ASIN]`.
_YEAR_PREFIX = re.compile(r"^ *\(?[0-9]{4}\)? *-")
_SEQUENCE_PREFIX = re.compile(r"^(?:(?:vol\.? |volume |book )\d{1,3}(?:\.\d{1,2})?\.? "
                              r"|\d{1,3}(?:\.\d{1,2})?(?:\. | - ))", re.IGNORECASE)
_BRACKETS = str.maketrans("{}[]", "()()")
NO_BREAK_SPACE, NO_BREAK_HYPHEN = "\u00a0", "\u2011"


def _unambiguous(title: str) -> str:
    """The title as its folder shows it: a title ABS would misread (a year or sequence in front, a `{…}` or
    `[…]`) is changed just enough not to be, looking the same: the first space its pattern needs becomes a
    no-break space (or `2001-x`'s hyphen a no-break hyphen); braces and brackets become parentheses. The
    tags, which ABS reads after the folder and which win, keep the exact title."""
    text = title.translate(_BRACKETS)
    if _YEAR_PREFIX.match(text) or _SEQUENCE_PREFIX.match(text):
        at = next(i for i, char in enumerate(text) if char in " -" and i > 0)
        text = text[:at] + (NO_BREAK_SPACE if text[at] == " " else NO_BREAK_HYPHEN) + text[at + 1:]
    return text


def _with_suffix(leaf: str, narrator: str) -> str:
    """The title folder: the leaf cut so that the `{Narrator}` suffix survives the 255-byte limit."""
    suffix = "{" + sanitise(narrator, fallback="", max_bytes=120) + "}" if narrator else ""
    room = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8")) - 1
    head = sanitise(leaf, fallback="Untitled", max_bytes=room)
    return f"{head} {suffix}" if suffix != "{}" and suffix else head


def allowed_root() -> Path:
    root = settings.AUDIOBOOK_LIBRARY_ROOT
    if not root:
        raise LibraryError("The operator has not set AUDIOBOOK_LIBRARY_ROOT; audiobooks cannot be published.",
                           code="no_library")
    return Path(root).resolve()


def inside(root: Path, candidate: Path) -> bool:
    resolved = candidate.resolve()
    return resolved == root or root in resolved.parents


def resolve_library(relative: str) -> Path:
    """`relative` under the operator's root, resolved (symlinks followed), refused if it lands outside; the
    folder is not created."""
    root = allowed_root()
    relative = (relative or "").strip().strip("/")
    candidate = root / relative if relative else root
    if "\x00" in relative or not inside(root, candidate):
        raise LibraryError(f"The library folder {relative!r} is outside AUDIOBOOK_LIBRARY_ROOT.",
                           code="library_outside_root")
    return candidate.resolve()


def user_library(relative: str) -> Path:
    """The user's library folder: `relative` under the operator's root, refused if it resolves outside."""
    candidate = resolve_library(relative)
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def staging_dir(library: Path, job_id: int) -> Path:
    """A fresh dot-named work folder in the library (the same filesystem: the publish is one rename)."""
    clear_staging(library, job_id)
    path = library / f"{STAGING_PREFIX}{job_id}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def clear_staging(library: Path, job_id: int) -> None:
    """Remove what an earlier run of this job left (a killed worker): runs are restartable from the start."""
    for leftover in library.glob(f"{STAGING_PREFIX}{job_id}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def publish(library: Path, staged: Path, parts: list[str], *, keep_both: bool) -> Path:
    """Rename the staged book folder to `<library>/<parts[:-1]>`; returns the published folder.

    An existing folder is never replaced: refused (`exists`), or with `keep_both` published as "… (2)"."""
    folder = library.joinpath(*parts[:-1])
    if not inside(library, folder):
        raise LibraryError(f"{folder} is outside the library.", code="library_outside_root")
    folder.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 100):
        target = folder if n == 1 else folder.with_name(sanitise(f"{folder.name[:240]} ({n})"))
        if os.path.lexists(target):
            if not keep_both:
                raise LibraryError(f"A book is already at {target.relative_to(library)}; it was left as it is.",
                                   code="exists")
            continue
        try:
            # rename() onto an existing *empty* directory would replace it: the lexists check above and
            # this being a fresh name make a lost race a failure (ENOTEMPTY/EEXIST), not a silent replace.
            os.rename(staged, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == 39:  # ENOTEMPTY: someone created it meanwhile
                continue
            raise
        return target
    raise LibraryError(f"Too many books named {folder.name}.", code="exists")
