"""Quality from a release title: resolution, source, video codec, audio codec, audiobook/ebook format.

A small table of patterns rather than guessit: guessit answers in ~5-10 ms per title (rebulk), which would
make parsing the slowest part of a 2,000-result search, and it knows nothing of audiobook formats (m4b, mp3
bitrates). The patterns follow the scene/P2P naming the *arr apps parse (Sonarr's QualityParser) and MAM's
"[ENG / M4B]" suffix. Each value is the canonical word, or absent.
"""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, str, re.Pattern]] = [
    ("resolution", value, re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE))
    for value, pattern in (("2160p", r"(?:2160p|4k|uhd)"), ("1080p", r"(?:1080[pi])"), ("720p", r"720p"),
                           ("576p", r"576p"), ("480p", r"(?:480p|sd)"))
] + [
    ("source", value, re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE))
    for value, pattern in (("remux", r"remux"), ("bluray", r"(?:blu-?ray|bdrip|brrip|bd25|bd50)"),
                           ("webdl", r"(?:web-?dl|webrip|web|amzn|nf|dsnp)"), ("hdtv", r"hdtv"),
                           ("dvd", r"(?:dvdrip|dvd|dvd5|dvd9)"), ("cam", r"(?:cam|hdcam|ts|telesync)"))
] + [
    ("codec", value, re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE))
    for value, pattern in (("x265", r"(?:x265|h\.?265|hevc)"), ("x264", r"(?:x264|h\.?264|avc)"),
                           ("av1", r"av1"), ("xvid", r"(?:xvid|divx)"))
] + [
    ("audio", value, re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE))
    for value, pattern in (("truehd", r"truehd"), ("dts", r"dts(?:-?hd)?"),
                           ("ddp", r"(?:ddp|eac3|dd\+)(?:[0-9]\.[0-9])?"), ("ac3", r"(?:ac3|dd)(?:[0-9]\.[0-9])?"),
                           ("aac", r"aac"), ("flac", r"flac"), ("opus", r"opus"), ("mp3", r"mp3"))
] + [
    ("format", value, re.compile(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", re.IGNORECASE))
    for value, pattern in (("m4b", r"m4b"), ("m4a", r"m4a"), ("mp3", r"mp3"), ("flac", r"flac"),
                           ("epub", r"epub"), ("pdf", r"pdf"), ("mobi", r"mobi"), ("azw3", r"azw3"),
                           ("cbz", r"cbz"), ("cbr", r"cbr"))
]
RANK = {"2160p": 4, "1080p": 3, "720p": 2, "576p": 1, "480p": 0, "remux": 5, "bluray": 4, "webdl": 3, "hdtv": 2,
        "dvd": 1, "cam": -5, "m4b": 3, "flac": 2, "m4a": 1, "mp3": 1, "epub": 2}


def parse(title: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value, pattern in _PATTERNS:
        if key not in found and pattern.search(title):
            found[key] = value
    return found


def points(quality: dict[str, str]) -> float:
    """A ranking bonus: better resolution, source and audiobook format; a cam is a malus."""
    return float(sum(RANK.get(quality.get(k, ""), 0) for k in ("resolution", "source", "format")))
