"""A user's library folder stays inside the operator's root AND apart from every other user's library: not the
same folder, not inside theirs, not holding theirs (a book published there would land in their
Audiobookshelf, or theirs in yours), not the root itself, not another user's default (their id at the top).
Refusals are 4xx with a code and never name the other user; the stored folder is normalised."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import AuditLog
from audiobooks.models import AudiobookSettings
from config.errors import Conflict

pytestmark = pytest.mark.django_db
URL = "/api/v1/audiobooks/settings/"


def put(api_client, folder: str):
    return api_client.put(URL, {"library_dir": folder}, format="json")


@pytest.fixture
def theirs(other_user):
    (Path(settings.AUDIOBOOK_LIBRARY_ROOT) / "family" / "bob").mkdir(parents=True)
    return AudiobookSettings.objects.create(user=other_user, library_dir="family/bob")


@pytest.mark.parametrize(("folder", "status", "code"), [
    ("family/bob", 409, "library_taken"),  # the same folder
    ("family/bob/alice", 409, "library_taken"),  # inside theirs
    ("family", 409, "library_taken"),  # holding theirs
    ("family/./bob/", 409, "library_taken"),  # the same, spelled otherwise
    ("x/../family/bob/sub", 409, "library_taken"),
    (".", 400, "library_reserved"),  # the root: everyone's libraries are in it
    ("", None, None),  # your default, your id: fine
    ("../escape", 400, "library_outside_root"),
])
def test_a_folder_overlapping_another_users_library_is_refused(api_client, user, theirs, folder, status, code):
    response = put(api_client, folder)
    if status is None:
        assert response.status_code == 200, response.json()
        return
    assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    assert theirs.user.email not in response.json()["detail"] and "bob" not in response.json()["detail"]
    assert not AudiobookSettings.objects.filter(user=user).exclude(library_dir="").exists()
    assert not AuditLog.objects.filter(action="audiobook.settings").exists()


def test_another_users_default_folder_is_reserved(api_client, user, other_user):
    for folder in (str(other_user.pk), f"{other_user.pk}/books", "999999"):  # theirs, inside, a future user's
        response = put(api_client, folder)
        assert (response.status_code, response.json()["code"]) == (400, "library_reserved"), folder
    assert put(api_client, f"{user.pk}/mine").status_code == 200  # inside your own default: yours


def test_a_free_folder_beside_theirs_is_stored_normalised(api_client, user, theirs):
    response = put(api_client, "family/./alice//books/")
    assert response.status_code == 200, response.json()
    assert AudiobookSettings.objects.get(user=user).library_dir == "family/alice/books"
    assert response.json()["library_path"] == str(Path(settings.AUDIOBOOK_LIBRARY_ROOT) / "family/alice/books")
    assert put(api_client, "family/bobby").status_code == 200  # a name that starts the same is another folder


def test_a_symlink_into_another_users_library_is_refused(api_client, user, theirs):
    (Path(settings.AUDIOBOOK_LIBRARY_ROOT) / "shortcut").symlink_to(Path(settings.AUDIOBOOK_LIBRARY_ROOT) / "family")
    response = put(api_client, "shortcut/bob")
    assert (response.status_code, response.json()["code"]) == (409, "library_taken")


def test_the_other_user_is_then_refused_yours(api_client, user, other_user):
    assert put(api_client, "shared/alice").status_code == 200
    api_client.force_authenticate(other_user)
    response = put(api_client, "shared")
    assert (response.status_code, response.json()["code"]) == (409, "library_taken")


@pytest.mark.django_db(transaction=True)
def test_two_users_claiming_overlapping_folders_at_once_get_one_each_way(user, other_user, monkeypatch):
    """Both check before either saves: without a lock both pass (the check is not a constraint). Each request
    waits for the other at a barrier right after its check; with the claims serialised the second cannot reach
    its check while the first holds the lock, so the first goes on alone once the barrier gives up."""
    from audiobooks import services

    barrier = threading.Barrier(2, timeout=3)
    checked = services._check_library_dir

    def check_then_meet(*args):
        result = checked(*args)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return result

    monkeypatch.setattr(services, "_check_library_dir", check_then_meet)

    def claim(person, folder):
        try:
            services.update_settings(person, library_dir=folder)
            return "saved"
        except Conflict as exc:
            return exc.code
        finally:
            connection.close()  # this thread's own

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(claim, (user, other_user), ("shelf", "shelf/inside")))
    assert outcomes == ["library_taken", "saved"]
    assert AudiobookSettings.objects.exclude(library_dir="").count() == 1
