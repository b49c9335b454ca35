"""Expiring named claims across processes: one holder at a time, lost by a holder that stops renewing.

A claim is a conditional UPDATE (`WHERE name = ? AND (expired OR held by me)`), or the INSERT of a new row;
two processes racing for a free lease get one winner, on SQLite and PostgreSQL alike. The same rows serve
`serialize(name)`: transactions that must not interleave (a check, then the write it allows) take turns.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from downloads.models import Lease


def new_holder() -> str:
    """A holder id unique to this call site's run: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(name: str, holder: str, ttl: float) -> bool:
    """Take (or renew) the lease for `ttl` seconds; False when someone else holds an unexpired one."""
    now = timezone.now()
    until = now + dt.timedelta(seconds=ttl)
    if Lease.objects.filter(Q(expires_at__lte=now) | Q(holder=holder), name=name).update(
        holder=holder, expires_at=until
    ):
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=until)
    except IntegrityError:  # the row exists and is held by someone else (or was just created by them)
        return False
    return True


def release(name: str, holder: str) -> None:
    """Give the lease up now (only if we still hold it)."""
    Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now())


def is_held(name: str) -> bool:
    return Lease.objects.filter(name=name, expires_at__gt=timezone.now()).exists()


def serialize(name: str) -> None:
    """Inside a transaction: the rest of it runs one at a time with every other transaction that called this
    with the same `name`, which waits here until this one ends. A write to the name's row holds its lock until
    commit (a row lock on PostgreSQL; SQLite's IMMEDIATE transactions already run one at a time). For a check
    that no unique constraint can state (one folder inside another) followed by the write it allows."""
    if not connection.in_atomic_block:
        raise RuntimeError("leases.serialize() only means something inside transaction.atomic()")
    now = timezone.now()
    if Lease.objects.filter(name=name).update(expires_at=now):
        return
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, expires_at=now)
    except IntegrityError:  # created meanwhile by a transaction that has committed: lock it now
        Lease.objects.filter(name=name).update(expires_at=now)
