"""Play buttons: on a job card and the job page's header when the job has a video or audio file, on each such
file in the files API (the job page's tree draws them from `play_url`), and nowhere else."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from downloads import playable
from downloads.models import Job, JobFile, Status
from streaming import stream as streams
from tests.downloads.factories import JobFactory, JobFileFactory
from tests.downloads.test_pages import DASHBOARD, card_html, json_script

pytestmark = pytest.mark.django_db

# path, mime type as register_files stores it → playable?
CASES = [
    ("film.mp4", "video/mp4", True),
    ("Show/S01/e1.mkv", "video/x-matroska", True),
    ("clip.ts", "text/vnd.trolltech.linguist", True),  # mimetypes' guess for .ts; the extension decides
    ("CLIP.WEBM", "application/octet-stream", True),
    ("song.flac", "audio/flac", True),
    ("book.mp3", "audio/mpeg", True),
    ("poster.jpg", "image/jpeg", False),
    ("subs.en.srt", "application/x-subrip", False),
    ("debian.iso", "application/x-iso9660-image", False),
    ("notes.txt", "text/plain", False),
]


@pytest.fixture
def client_user(client, user):
    client.force_login(user)
    return client


def play_link(html: str) -> str | None:
    match = re.search(r'<a class="button small" data-f="play"[^>]*>', html)
    return match.group(0) if match else None


def job_with(user, path: str, mime: str, **fields) -> Job:
    job = JobFactory(user=user, name=f"job {path}", status=Status.DOWNLOADING, **fields)
    JobFileFactory(job=job, path=path, mime_type=mime, size_bytes=1000)
    JobFileFactory(job=job, path="readme.txt", mime_type="text/plain", size_bytes=10)
    return job


@pytest.mark.parametrize(("path", "mime", "expected"), CASES)
def test_the_rule_in_python_and_in_sql_agree_with_the_file_the_player_picks(user, path, mime, expected):
    job = job_with(user, path, mime)
    assert playable.is_playable(path, mime) is expected
    assert JobFile.objects.filter(job=job).filter(playable.playable_files()).exists() is expected
    assert Job.objects.annotate(p=playable.has_playable_file()).get(pk=job.pk).p is expected
    assert (streams.primary_file(job) is not None) is expected  # a Play button never leads to "nothing to play"


def test_dashboard_card_shows_play_only_for_a_job_with_video_or_audio(client_user, user):
    film = job_with(user, "Film/film.mkv", "video/x-matroska")
    album = job_with(user, "Album/01.flac", "audio/flac")
    iso = job_with(user, "debian.iso", "application/x-iso9660-image")
    bare = JobFactory(user=user, name="no files yet", status=Status.FETCHING_METADATA)
    html = client_user.get(DASHBOARD).content.decode()

    for job in (film, album):
        link = play_link(card_html(html, job.pk))
        assert link and f'href="/d/play/{job.pk}/"' in link and f'aria-label="Play {job.name}"' in link
        assert " hidden" not in link
    for job in (iso, bare):
        assert " hidden" in play_link(card_html(html, job.pk))  # kept for the JS, which shows it once files come
    states = {s["id"]: s for s in json_script(html, "job-states")}
    assert [states[j.pk]["playable"] for j in (film, album, iso, bare)] == [True, True, False, False]
    assert json_script(html, "page-config")["playUrl"] == "/d/play/0/"


def test_no_play_once_the_files_are_removed(client_user, user):
    job = job_with(user, "film.mp4", "video/mp4", data_deleted_at=timezone.now())
    html = client_user.get(DASHBOARD).content.decode()
    assert " hidden" in play_link(card_html(html, job.pk))
    assert {s["id"]: s for s in json_script(html, "job-states")}[job.pk]["playable"] is False


def test_the_card_template_for_live_jobs_has_a_hidden_play(client_user, user):
    html = client_user.get(DASHBOARD).content.decode()
    template = html[html.index('id="job-card-template"'):]
    assert " hidden" in play_link(template)


def test_job_page_header_has_play_for_a_playable_job_only(client_user, user):
    film = job_with(user, "film.mp4", "video/mp4")
    iso = job_with(user, "debian.iso", "application/x-iso9660-image")
    film_html = client_user.get(f"/jobs/{film.pk}/").content.decode()
    link = play_link(film_html)
    assert link and f'href="/d/play/{film.pk}/"' in link and " hidden" not in link
    assert " hidden" in play_link(client_user.get(f"/jobs/{iso.pk}/").content.decode())
    assert json_script(film_html, "job-state")["playable"] is True


def test_files_api_gives_play_url_for_video_and_audio_files_only(client_user, user):
    job = JobFactory(user=user, status=Status.COMPLETED)
    for path, mime, _ in CASES:
        JobFileFactory(job=job, path=path, mime_type=mime)
    files = {f["path"]: f for f in client_user.get(f"/api/v1/jobs/{job.pk}/files/").json()["files"]}
    for path, _, expected in CASES:
        url = files[path]["play_url"]
        assert (url is not None) is expected, path
        if expected:
            assert url == f"/d/play/{job.pk}/{files[path]['id']}/"
            assert client_user.get(url).status_code == 200


def test_player_page_uses_an_audio_element_for_audio(client_user, user):
    job = job_with(user, "Album/01.flac", "audio/flac")
    html = client_user.get(f"/d/play/{job.pk}/").content.decode()
    assert '<audio id="player-media"' in html and "<video" not in html
    film = job_with(user, "film.mp4", "video/mp4")
    html = client_user.get(f"/d/play/{film.pk}/").content.decode()
    assert '<video id="player-media"' in html and 'aria-labelledby="player-title"' in html


def test_player_page_without_anything_to_play_is_404(client_user, user):
    job = job_with(user, "debian.iso", "application/x-iso9660-image")
    response = client_user.get(f"/d/play/{job.pk}/")
    assert response.status_code == 404 and "Nothing to play" in response.content.decode()
