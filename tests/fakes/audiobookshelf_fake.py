"""A faithful stand-in for the part of Audiobookshelf (advplyr/audiobookshelf) Flotilla talks to, on loopback.

API (server/routers/ApiRouter.js, controllers/LibraryController.js): every call needs `Authorization: Bearer
<token>` (else 401 "Unauthorized"); `GET /api/libraries` → `{"libraries": [{id, name, mediaType, folders:
[{id, fullPath}]}]}`; `POST /api/libraries/:id/scan` → 404 "Not Found" for an unknown library, 403 for a
non-admin user, else 200 "OK" and the scan runs; `GET /api/libraries/:id/items` → `{"results": [...], "total"}`
with `media.metadata` {title, subtitle, authorName, narratorName, seriesName, publishedYear}.

The scan is real: it groups the library folder into books as ABS does for flat folders (a folder holding
audio is a book; dot-paths ignored; `CD1`/`Disc 2` folded into the parent) and parses each book's folder
path with `parse_book_dir`, a port of ABS's `getBookDataFromDir` (server/utils/scandir.js). The parse rules
are checked against the table of docs/research (run there under node) in tests/audiobooks/test_library.py.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

AUDIO = {".m4b", ".mp3", ".m4a", ".flac", ".opus", ".ogg", ".oga", ".mp4", ".aac", ".wma", ".aiff", ".wav",
         ".webm", ".webma", ".mka", ".awb", ".caf"}
DISC = re.compile(r"^(cd|dis[ck])\s*\d{1,3}$", re.IGNORECASE)


def _asin(folder: str) -> tuple[str, str | None]:
    match = re.search(r"(?: |^)\[([A-Z0-9]{10})](?= |$)", folder)
    if not match:
        return folder, None
    return (folder[:match.start()] + folder[match.end():]).strip(), match.group(1)


def _narrator(folder: str) -> tuple[str, str | None]:
    match = re.match(r"^(?P<title>.*) \{(?P<narrators>.*)\}$", folder)
    return (match["title"], match["narrators"]) if match else (folder, None)


def _sequence(folder: str) -> tuple[str, str | None]:
    # "Vol 1 - x", "Vol. 1 - x", "Volume 1. x", "Book 1 - x", "1 - x", "1. x", "3.5 - x"; a bare number
    # ("101 Dalmatians") is not a sequence.
    match = re.match(r"^(?P<label>vol\.? |volume |book )?(?P<seq>\d{1,3}(?:\.\d{1,2})?)(?P<dot>\.?)(?: (?P<rest>.*))?$",
                     folder, re.IGNORECASE)
    if not match or not match["rest"]:
        return folder, None
    rest = match["rest"]
    if rest.startswith("- "):
        return rest[2:].strip(), match["seq"]
    if match["label"] or match["dot"]:
        return rest.strip(), match["seq"]
    return folder, None


def _year(folder: str) -> tuple[str, str | None]:
    match = re.match(r"^ *\(?([0-9]{4})\)? *- *(.+)", folder)
    return (match.group(2), match.group(1)) if match else (folder, None)


def _subtitle(folder: str) -> tuple[str, str | None]:
    title, sep, subtitle = folder.partition(" - ")
    return (title, subtitle) if sep else (folder, None)


def parse_book_dir(rel_path: str, *, parse_subtitle: bool = False) -> dict:
    """ABS's getBookDataFromDir: {Author}/{Series}/{Title} from the last three folders."""
    parts = rel_path.split("/")
    folder = parts.pop()
    series = parts.pop() if len(parts) > 1 else None
    author = parts.pop() if parts else None
    folder, asin = _asin(folder)
    folder, narrators = _narrator(folder)
    folder, sequence = _sequence(folder) if series else (folder, None)
    folder, year = _year(folder)
    title, subtitle = _subtitle(folder) if parse_subtitle else (folder, None)
    if not series and not parse_subtitle and " - " in title and re.match(r"^(vol\.? |volume |book )", title, re.I):
        title, subtitle = _subtitle(title)  # research table: "Vol. 1 - x" without a series folder
    return {"title": title, "subtitle": subtitle, "authors": parse_authors(author) if author else [],
            "narrators": [n.strip() for n in narrators.split(",")] if narrators else [], "series": series,
            "sequence": sequence, "publishedYear": year, "asin": asin}


def parse_authors(value: str) -> list[str]:
    """ABS's parseNameString, simplified: split on `&`, `;`, ` and `; a "Last, First" pair becomes
    "First Last" (two comma parts with no spaces around a single name each)."""
    names = []
    for chunk in re.split(r"\s*(?:&|;|\band\b)\s*", value):
        pieces = [p.strip() for p in chunk.split(",") if p.strip()]
        if len(pieces) == 2 and all(" " not in p for p in pieces):
            names.append(f"{pieces[1]} {pieces[0]}")
        else:
            names.extend(pieces)
    return names


def scan_folder(root: Path) -> list[dict]:
    """Books under `root`, grouped and parsed as ABS would (flat layouts)."""
    books: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and "@eaDir" not in d)
        rel = Path(dirpath).relative_to(root).as_posix()
        if any(p.startswith(".") for p in rel.split("/")) or (Path(dirpath) / ".ignore").exists():
            continue
        audio = [f for f in filenames if Path(f).suffix.lower() in AUDIO and not f.startswith(".")]
        if audio:
            book = rel.rsplit("/", 1)[0] if DISC.match(Path(rel).name) and "/" in rel else rel
            books.setdefault(book, []).extend(audio)
    items = []
    for rel, files in sorted(books.items()):
        meta = parse_book_dir(rel)
        items.append({"id": f"li_{len(items) + 1}", "path": str(root / rel), "relPath": rel, "media": {
            "metadata": {"title": meta["title"], "subtitle": meta["subtitle"],
                         "authorName": ", ".join(meta["authors"]), "narratorName": ", ".join(meta["narrators"]),
                         "seriesName": f"{meta['series']} #{meta['sequence']}" if meta["sequence"]
                         else (meta["series"] or ""),
                         "publishedYear": meta["publishedYear"]},
            "audioFiles": sorted(files)}})
    return items


@dataclass
class FakeAudiobookshelf:
    libraries: dict[str, Path]  # id → folder
    tokens: dict[str, bool] = field(default_factory=dict)  # token → is admin
    scans: list[str] = field(default_factory=list)
    items: dict[str, list[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body) -> None:
                data = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _user(self) -> bool | None:
                auth = self.headers.get("Authorization", "")
                return fake.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None

            def do_GET(self) -> None:
                admin = self._user()
                if admin is None:
                    return self._send(401, "Unauthorized")
                if self.path == "/api/libraries":
                    return self._send(200, {"libraries": [
                        {"id": lid, "name": lid, "mediaType": "book", "folders": [{"id": f"fol_{lid}",
                                                                                   "fullPath": str(folder)}]}
                        for lid, folder in fake.libraries.items()]})
                match = re.fullmatch(r"/api/libraries/([^/]+)/items", self.path)
                if match and match.group(1) in fake.libraries:
                    results = fake.items.get(match.group(1), [])
                    return self._send(200, {"results": results, "total": len(results)})
                return self._send(404, "Not Found")

            def do_POST(self) -> None:
                admin = self._user()
                if admin is None:
                    return self._send(401, "Unauthorized")
                match = re.fullmatch(r"/api/libraries/([^/?]+)/scan(?:\?force=1)?", self.path)
                if not match or match.group(1) not in fake.libraries:
                    return self._send(404, "Not Found")
                if not admin:
                    return self._send(403, "Forbidden")
                lid = match.group(1)
                fake.scans.append(lid)
                fake.items[lid] = scan_folder(fake.libraries[lid])
                return self._send(200, "OK")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAudiobookshelf:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
