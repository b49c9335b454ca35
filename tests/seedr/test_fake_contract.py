"""The fake Seedr speaks what seedrcc really sends and parses: seedrcc's own AsyncSeedr against it.

If seedrcc changes a path, a field or a model, these fail before any Flotilla test does.
"""

from __future__ import annotations

import asyncio
import hashlib

import bencodepy
import httpx
import pytest
import seedrcc
from seedrcc import AsyncSeedr, _constants
from seedrcc.exceptions import APIError, AuthenticationError

from tests.fakes.seedr_fake import DEFAULT_FILE_SIZE, FakeSeedr, file_bytes, file_sha256

HASH = "ab" * 20


@pytest.fixture
def fake(monkeypatch):
    fake = FakeSeedr(progress_step=50).serve()
    fake.add_account("alice@seedr.test", "s3cret", space_max=10_000_000)
    for name, url in {"RESOURCE_URL": f"{fake.oauth_url}/resource.php", "TOKEN_URL": f"{fake.oauth_url}/token.php",
                      "DEVICE_CODE_URL": f"{fake.api_url}/device/code",
                      "DEVICE_AUTHORIZE_URL": f"{fake.api_url}/device/authorize"}.items():
        monkeypatch.setattr(_constants, name, url)
    yield fake
    fake.stop()


def run(coro):
    return asyncio.run(coro)


def test_password_login_list_add_progress_and_complete(fake):
    async def scenario():
        async with await AsyncSeedr.from_password("alice@seedr.test", "s3cret") as client:
            assert client.token.refresh_token
            added = await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{HASH}&dn=Big+Buck")
            first = await client.list_contents()
            second = await client.list_contents()
            folder = await client.list_contents(str(second.folders[0].id))
            usage = await client.get_memory_bandwidth()
            return added, first, second, folder, usage

    added, first, second, folder, usage = run(scenario())
    assert added.result is True and added.torrent_hash == HASH and added.title == "Big Buck"
    assert [(t.id, t.progress) for t in first.torrents] == [(added.user_torrent_id, "50")]
    assert first.torrents[0].seeders > 0 and first.space_max == 10_000_000
    assert second.torrents == [] and [f.name for f in second.folders] == ["Big Buck"]  # done: a folder
    assert [(f.name, f.size) for f in folder.files] == [("Big Buck.bin", DEFAULT_FILE_SIZE)]
    assert folder.files[0].folder_file_id != folder.files[0].file_id
    assert usage.space_used == DEFAULT_FILE_SIZE
    record = next(r for r in fake.requests if r["func"] == "add_torrent")
    assert record["form"] == ["folder_id", "torrent_magnet", "wishlist_id"]  # seedrcc's exact fields


def test_wrong_password_is_an_authentication_error(fake):
    with pytest.raises(AuthenticationError) as err:
        run(AsyncSeedr.from_password("alice@seedr.test", "nope"))
    assert err.value.error_type == "invalid_grant"


def test_device_flow_pending_then_authorized_then_refreshes_by_device_code(fake):
    codes = run(AsyncSeedr.get_device_code())
    assert codes.verification_url.endswith("/devices") and codes.user_code
    with pytest.raises(AuthenticationError):  # authorization_pending
        run(AsyncSeedr.from_device_code(codes.device_code))
    fake.approve(codes.user_code, "alice@seedr.test")
    refreshed = []

    async def scenario():
        client = await AsyncSeedr.from_device_code(codes.device_code, on_token_refresh=refreshed.append)
        first = client.token.access_token
        fake.expire_tokens()
        settings = await client.get_settings()  # expired_token → re-authorize with the device code → retry
        devices = await client.get_devices()
        await client.close()
        return first, client.token, settings, devices

    first, token, settings, devices = run(scenario())
    assert token.device_code == codes.device_code and token.access_token != first
    assert refreshed == [token]
    assert settings.account.email == "alice@seedr.test" and settings.account.max_invites == 5
    assert [d.client_name for d in devices] == ["Kodi"]


def test_refresh_grant_and_a_revoked_refresh_token(fake):
    async def scenario():
        client = await AsyncSeedr.from_password("alice@seedr.test", "s3cret")
        fake.expire_tokens()
        await client.list_contents()
        fake.expire_tokens()
        fake.revoke_refresh_tokens()
        with pytest.raises(AuthenticationError) as err:
            await client.list_contents()
        await client.close()
        return err.value

    error = run(scenario())
    assert error.error_type == "invalid_grant"
    assert fake.calls("token") == 3  # login, one good refresh, one refused


def test_unknown_token_is_401_access_denied_without_refresh(fake):
    async def scenario():
        async with AsyncSeedr(seedrcc.Token(access_token="bogus", refresh_token="x")) as client:
            await client.list_contents()

    with pytest.raises(AuthenticationError) as err:
        run(scenario())
    assert err.value.error_type == "access_denied"
    assert fake.calls("token") == 0


def test_queue_full_is_413_with_reason_phrase_and_space_is_checked(fake):
    fake.define("cd" * 20, "Huge", [("huge.bin", 20_000_000)])

    async def scenario():
        async with await AsyncSeedr.from_password("alice@seedr.test", "s3cret") as client:
            with pytest.raises(APIError) as big:
                await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{'cd' * 20}")
            await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{HASH}")
            with pytest.raises(APIError) as full:
                await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{'ef' * 20}")
            settings = await client.get_settings()
            return big.value, full.value, settings

    big, full, settings = run(scenario())
    assert big.error_type == "not_enough_space_added_to_wishlist"
    assert full.response.status_code == 413 and full.error_type is None
    assert full.response.json()["reason_phrase"] == "queue_full_added_to_wishlist"
    assert len(settings.account.wishlist) == 2


def test_torrent_file_upload_is_multipart_and_parsed(fake, tmp_path):
    info = {b"name": b"Album", b"piece length": 16384, b"pieces": b"x" * 20,
            b"files": [{b"path": [b"cd1", b"01.flac"], b"length": 1000}, {b"path": [b"02.flac"], b"length": 2000}]}
    path = tmp_path / "album.torrent"
    path.write_bytes(bencodepy.encode({b"info": info}))

    async def scenario():
        async with await AsyncSeedr.from_password("alice@seedr.test", "s3cret") as client:
            return await client.add_torrent(torrent_file=str(path))

    added = run(scenario())
    assert added.torrent_hash == hashlib.sha1(bencodepy.encode(info)).hexdigest()
    record = next(r for r in fake.requests if r["func"] == "add_torrent")
    assert record["files"] == ["torrent_file"]


def test_file_links_serve_real_bytes_with_range_and_expire(fake):
    async def scenario():
        async with await AsyncSeedr.from_password("alice@seedr.test", "s3cret") as client:
            await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{HASH}&dn=Clip")
            await client.list_contents()
            root = await client.list_contents()
            folder = await client.list_contents(str(root.folders[0].id))
            link = await client.fetch_file(str(folder.files[0].folder_file_id))
            archive = await client.create_archive(str(root.folders[0].id))
            deleted = await client.delete_folder(str(root.folders[0].id))
            return link, archive, deleted

    link, archive, deleted = run(scenario())
    assert link.name == "Clip.bin" and "/ff_get/" in link.url
    expected = file_bytes(HASH, "Clip.bin", DEFAULT_FILE_SIZE)
    assert hashlib.sha256(expected).hexdigest() == file_sha256(HASH, "Clip.bin", DEFAULT_FILE_SIZE)
    assert archive.archive_url and deleted.result is True
    # The folder is gone, and so is its file: the signed link now answers 404.
    assert httpx.get(link.url).status_code == 404


def test_range_requests_on_a_live_link(fake):
    fake.define(HASH, "Movie", [("Movie/movie.mkv", 3_000_000)])

    async def scenario():
        async with await AsyncSeedr.from_password("alice@seedr.test", "s3cret") as client:
            await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{HASH}")
            await client.list_contents()
            root = await client.list_contents()
            movie_dir = (await client.list_contents(str(root.folders[0].id))).folders[0]
            inner = await client.list_contents(str(movie_dir.id))
            return await client.fetch_file(str(inner.files[0].folder_file_id))

    link = run(scenario())
    full = file_bytes(HASH, "Movie/movie.mkv", 3_000_000)
    whole = httpx.get(link.url)
    assert whole.status_code == 200 and whole.content == full and whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(link.url, headers={"Range": "bytes=1048580-"})
    assert part.status_code == 206 and part.content == full[1048580:]
    assert part.headers["content-range"] == f"bytes 1048580-2999999/{len(full)}"
    assert httpx.get(link.url, headers={"Range": "bytes=3000000-"}).status_code == 416
    tampered = link.url.replace("st=", "st=0")
    assert httpx.get(tampered).status_code == 403


def test_file_links_answer_head_and_some_hosts_say_retry_after(fake):
    """What the stream proxy relies on: HEAD like GET without a body, Range on it, and the 404 with
    `Retry-After: 5` some Seedr file hosts answer (research §2, SeedrPool)."""
    fake.define(HASH, "Movie", [("movie.mkv", 2_000_000)])

    async def scenario():
        async with await AsyncSeedr.from_password("alice@seedr.test", "s3cret") as client:
            await client.add_torrent(magnet_link=f"magnet:?xt=urn:btih:{HASH}")
            await client.list_contents()
            root = await client.list_contents()
            inner = await client.list_contents(str(root.folders[0].id))
            return await client.fetch_file(str(inner.files[0].folder_file_id))

    link = run(scenario())
    head = httpx.head(link.url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "2000000" and head.headers["accept-ranges"] == "bytes"
    head = httpx.head(link.url, headers={"Range": "bytes=100-199"})
    assert head.status_code == 206 and head.headers["content-range"] == "bytes 100-199/2000000"
    fake.fail_next("ff_get", 404, {"status_code": 404, "reason_phrase": "not_found"}, headers={"Retry-After": "5"})
    busy = httpx.get(link.url)
    assert busy.status_code == 404 and busy.headers["retry-after"] == "5"
    assert httpx.get(link.url).status_code == 200  # the next read works
