"""Rate limits for the account flows (sign-up, password reset, verification resend) and websocket connects.

Counted in Django's cache, so they work with the in-memory cache of a single-process install (each
process counts on its own) and with Redis (one count shared by every process). Fixed windows: a key per
(limit, who, window number) that expires with its window; `incr` is atomic on Redis and under
LocMemCache's lock. At a window's edge a client can get up to twice the count in a short burst — the price
of one cache key per client instead of a log of timestamps.

Who is counted is hashed into the key: cache keys never hold an email address. IPv6 clients are counted
per /64, the block one household or server usually holds, so rotating through its addresses gains nothing.
Limits are settings (`RATE_LIMIT_*`, "count/period", e.g. "5/hour"; "0" or "" turns one off) checked at
startup by accounts/checks.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from config.errors import DomainError

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


class Throttled(DomainError):
    """Over a limit: 429 with a stable code; `retry_after` says in how many seconds to try again."""

    code = "throttled"
    http_status = 429

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def parse_rate(text: str) -> Rate | None:
    """Parse "5/hour", "10/15m", "3/day" into a Rate; "" or "0" is None (no limit). ValueError otherwise."""
    text = (text or "").strip().lower()
    if text in ("", "0"):
        return None
    match = _RATE.match(text)
    if not match or match.group(3) not in _PERIODS:
        raise ValueError(f"not a rate: {text!r} (use e.g. '5/hour', '10/15m')")
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count == 0:
        return None
    return Rate(count, multiple * _PERIODS[unit])


def rate(setting: str) -> Rate | None:
    return parse_rate(getattr(settings, setting))


def client_key(ip: str) -> str:
    """What one client is, for counting: the address, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # "" (no request: a shell, a task) is not counted
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:  # ::ffff:1.2.3.4 is the IPv4 client 1.2.3.4
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _key(scope: str, who: str, limit: Rate, now: float) -> tuple[str, int]:
    window = int(now // limit.seconds)
    digest = hashlib.sha256(f"{scope}:{who}".encode()).hexdigest()[:32]
    retry_after = max(1, math.ceil((window + 1) * limit.seconds - now))
    return f"throttle:{scope}:{digest}:{limit.seconds}:{window}", retry_after


def hit(scope: str, who: str, limit: Rate | None) -> int:
    """Count one attempt. Returns 0 when it is within the limit, else the seconds until the window ends."""
    if limit is None or not who:
        return 0
    key, retry_after = _key(scope, who, limit, time.time())
    cache.add(key, 0, timeout=limit.seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.set(key, 1, timeout=limit.seconds + 1)
        count = 1
    return retry_after if count > limit.count else 0


async def ahit(scope: str, who: str, limit: Rate | None) -> int:
    """`hit` for async callers (the websocket consumer)."""
    if limit is None or not who:
        return 0
    key, retry_after = _key(scope, who, limit, time.time())
    await cache.aadd(key, 0, timeout=limit.seconds + 1)
    try:
        count = await cache.aincr(key)
    except ValueError:
        await cache.aset(key, 1, timeout=limit.seconds + 1)
        count = 1
    return retry_after if count > limit.count else 0


def wait_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes" if minutes < 90 else f"{math.ceil(minutes / 60)} hours"


def check(what: str, checks: list[tuple[str, str, str]]) -> None:
    """Count the attempt against every (scope, who, setting) and raise Throttled if any is over.
    Every counter is hit, so a client over one limit keeps using up the others too."""
    waits = [hit(scope, who, rate(setting)) for scope, who, setting in checks]
    wait = max(waits, default=0)
    if wait:
        raise Throttled(f"Too many {what}. Try again in {wait_text(wait)}.", retry_after=wait)
