"""The servers page in real Chromium against real daphne + qcluster and a real transmission-daemon (and
qbittorrent-nox) on 127.0.0.1, with a real torrent from the loopback swarm: add a server through the form
(wrong password, then the right one), see a torrent added outside Flotilla as external and adopt it, stop and
start torrents from the page (checked on the daemon itself), delete a server, and never see a password in the
page or in anything the page is sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Response, expect

from downloads.models import Job, Status
from servers import clients
from servers.clients import State
from servers.models import TorrentServer
from tests.accounts.factories import UserFactory
from tests.billing.factories import PlanAssignmentFactory, PlanFactory
from tests.browser.conftest import log_in
from tests.servers import daemons
from tests.servers.conftest import seed_to, server_for
from tests.servers.daemons import wait_until
from tests.servers.factories import TorrentServerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG_PASSWORD = " not the pass 7731 "  # spaces, inside and around, are part of a password
LONG = 30_000  # ms: generous, for a loaded machine (the daemon, daphne and qcluster share two cores)


class Responses:
    """Every response the page receives from our own server (page.on("response")), its body read as it arrives.

    A body can only be missed when Playwright says the page navigated away before it was read (a list refresh
    still in flight at a reload, which the page never used); every other failure to read is an error. Every
    kind of change the page made must have had its answer read; the listings, which the page refreshes on a
    timer, are read once more through the page's own session at the end, so coverage never hangs on timing."""

    NAVIGATED_AWAY = "navigated away"

    def __init__(self, page: Page, base_url: str) -> None:
        self.bodies: list[tuple[str, str, str | None]] = []  # method, URL, body (None: not read)
        self.unreadable: list[str] = []
        self._base = base_url
        page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        if not response.url.startswith(self._base) or 300 <= response.status < 400:
            return
        if response.status == 204:  # no content: nothing to read (Chromium keeps no body to ask for)
            self.bodies.append((response.request.method, response.url, ""))
            return
        try:
            body: str | None = response.text()
        except Exception as exc:
            if self.NAVIGATED_AWAY not in str(exc):
                self.unreadable.append(f"{response.url}: {exc}")
            body = None
        self.bodies.append((response.request.method, response.url, body))

    def assert_never_contain(self, page: Page, *secrets: str) -> None:
        assert self.unreadable == []
        for path in ("/api/v1/servers/", "/api/v1/torrents/", "/servers/"):
            body = page.evaluate("url => fetch(url, {credentials: 'same-origin'}).then(r => r.text())", path)
            self.bodies.append(("GET", self._base + path, body))
        ours = [(method, urlsplit(url).path, body) for method, url, body in self.bodies
                if "/api/v1/servers/" in url or "/api/v1/torrents/" in url or urlsplit(url).path == "/servers/"]
        changes = {(method, path) for method, path, _ in ours if method != "GET"}
        read = {(method, path) for method, path, body in ours if body is not None}
        assert changes - read == set(), "the answer to a change the page made was never read"
        for secret in secrets:
            assert [url for _, url, body in self.bodies if body and secret in body] == []


class Dialogs:
    """Answers the page's confirm() dialogs in order (True: OK) and keeps their messages."""

    def __init__(self, page: Page) -> None:
        self.answers: list[bool] = []
        self.messages: list[str] = []
        page.on("dialog", self._answer)

    def _answer(self, dialog) -> None:
        self.messages.append(dialog.message)
        if self.answers and self.answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()


@pytest.fixture
def alice(transactional_db):
    user = UserFactory(email="alice@example.com")
    PlanAssignmentFactory(user=user, plan=PlanFactory(max_active_jobs=10))
    return user


@pytest.fixture
def servers_page(page: Page, live_server_url, alice) -> Iterator[tuple[Page, Responses]]:
    """Alice, logged in, on the servers page; every response to her browser recorded."""
    responses = Responses(page, live_server_url)
    log_in(page, alice.email)
    page.get_by_role("link", name="Servers").click()
    expect(page.get_by_role("heading", name="Your torrent servers")).to_be_visible()
    yield page, responses
    assert page.js_errors == []


@pytest.fixture
def emptied(request) -> Iterator[None]:
    """The daemons are shared by the module: leave them without torrents for the next test."""
    yield
    for kind in ("transmission", "qbittorrent"):
        if kind in request.fixturenames:
            daemon = request.getfixturevalue(kind)
            with daemon_client(daemon) as client:
                for torrent in client.list():
                    client.remove(torrent.hash, delete_data=True)


class daemon_client:
    """Flotilla's own client for a daemon (servers/clients/), outside any Flotilla record or cache."""

    def __init__(self, daemon: daemons.Daemon) -> None:
        self.client = clients.build(TorrentServer(**daemon.server_fields()))

    def __enter__(self) -> clients.TorrentClient:
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()


def state_on(daemon: daemons.Daemon, info_hash: str) -> State | None:
    with daemon_client(daemon) as client:
        found = client.list([info_hash])
    return found[0].state if found else None


def server_row(page: Page, name: str):
    return page.locator("#server-rows tr", has=page.get_by_role("cell", name=name, exact=True))


def torrent_row(page: Page, name: str):
    return page.locator("#torrent-rows tr", has_text=name)


def fill_server_form(page: Page, daemon: daemons.Daemon, *, name: str, password: str) -> None:
    dialog = page.locator("#server-dialog")
    expect(dialog).to_be_visible()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Type", exact=True).select_option(daemon.kind)
    # Only the fields of this type: no rTorrent connection choice or socket, but username and password.
    expect(dialog.get_by_label("Connection")).to_be_hidden()
    expect(dialog.locator("#sf-socket")).to_be_hidden()
    expect(page.get_by_label("Port", exact=True)).to_have_attribute("placeholder", {"transmission": "9091",
                                                                        "qbittorrent": "8080"}[daemon.kind])
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill(str(daemon.rpc_port))
    page.get_by_label("Username", exact=True).fill(daemon.username)
    page.locator("#sf-password").fill(password)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()


def box(locator) -> dict:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not laid out"
    return found


def assert_form_laid_out(page: Page) -> None:
    """Every text field of the dialog spans its width like the selects (none left at the browser's default
    size); host and port share a line, the port the narrower."""
    form = box(page.locator("#server-form"))
    for field in ("#sf-name", "#sf-type", "#sf-user", "#sf-password", "#sf-dir"):
        assert box(page.locator(field))["width"] > form["width"] * 0.9, field
    host, port = box(page.locator("#sf-host")), box(page.locator("#sf-port"))
    assert abs(host["y"] - port["y"]) < 2 and port["width"] < host["width"]
    assert abs(host["height"] - box(page.locator("#sf-password"))["height"]) < 2
    assert abs(port["height"] - host["height"]) < 2


def assert_torrents_head_on_one_line(page: Page) -> None:
    """The torrents heading, its server filter and Refresh share one line."""
    heading = box(page.locator("#torrents-title"))
    middle = heading["y"] + heading["height"] / 2
    for control in ("#torrent-server-filter", "#torrent-refresh"):
        found = box(page.locator(control))
        assert found["y"] < middle < found["y"] + found["height"], control


@pytest.mark.parametrize("kind", ["transmission", "qbittorrent"])
def test_add_a_server_with_a_wrong_password_then_the_right_one(servers_page, kind, request, alice):
    daemon = request.getfixturevalue(kind)
    page, responses = servers_page
    expect(page.locator("#servers-empty")).to_be_visible()
    dialog = page.locator("#server-dialog")

    page.get_by_role("button", name="Add server").click()
    # rTorrent's own fields appear only for rTorrent.
    page.get_by_label("Type", exact=True).select_option("rtorrent")
    expect(dialog.get_by_label("Connection")).to_be_visible()
    # A missing host is refused in the dialog, field by field; nothing is saved.
    page.get_by_label("Name", exact=True).fill("Home box")
    page.get_by_label("Type", exact=True).select_option(kind)
    dialog.get_by_role("button", name="Save").click()
    errors = page.locator("#server-errors")
    expect(errors).to_contain_text("host: Give the server's host name or IP address.")
    expect(errors).to_be_in_viewport(ratio=1)  # below the fields of a dialog taller than the window: scrolled to
    expect(dialog).to_be_visible()
    assert_form_laid_out(page)
    assert not TorrentServer.objects.exists()

    fill_server_form(page, daemon, name="Home box", password=WRONG_PASSWORD)
    row = server_row(page, "Home box")
    expect(row.locator(".badge")).to_have_text("error", timeout=LONG)
    label = {"transmission": "Transmission", "qbittorrent": "qBittorrent"}[kind]
    expect(row).to_contain_text(f"{label} refused the username or password.")
    expect(row.locator("td").nth(1)).to_have_text(label)
    server = TorrentServer.objects.get(owner=alice, name="Home box")
    assert (server.status, server.status_code) == ("error", "server_auth")
    assert server.password == WRONG_PASSWORD  # exactly as typed: spaces are part of a password
    # The torrents list says which server does not answer, and why.
    expect(page.locator("#torrent-errors")).to_contain_text(f"Home box {label} refused", timeout=LONG)

    page.get_by_role("button", name="Edit Home box").click()
    expect(page.locator("#sf-password-hint")).to_have_text("(stored; leave empty to keep it)")
    expect(page.get_by_label("Host", exact=True)).to_have_value("127.0.0.1")
    expect(page.locator("#sf-password")).to_have_value("")  # a stored password is never sent back
    fill_server_form(page, daemon, name="Home box", password=daemon.password)

    expect(row.locator(".badge")).to_have_text("connected", timeout=LONG)
    version = {"transmission": r"^Transmission 3\.00", "qbittorrent": r"^qBittorrent v4\.5\.2"}[kind]
    expect(row.locator("td").nth(4)).to_have_text(re.compile(version))
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^connected\s+\d+(\.\d+)? ms$"))
    expect(page.locator("#torrent-errors")).to_be_empty(timeout=LONG)
    expect(page.locator("#torrents-status")).to_have_text("No torrents on these servers.")
    server.refresh_from_db()
    assert server.status == "connected" and server.password == daemon.password

    page.get_by_role("button", name="Test Home box").click()  # test again on demand
    expect(page.locator("#announcer")).to_have_text("Home box: connected", timeout=LONG)

    page.reload()  # the server-rendered page says the same
    expect(server_row(page, "Home box").locator(".badge")).to_have_text("connected")
    expect(server_row(page, "Home box").locator("td").nth(4)).to_have_text(re.compile(version))
    expect(server_row(page, "Home box").locator("td").nth(1)).to_have_text(label)

    responses.assert_never_contain(page, WRONG_PASSWORD, daemon.password)
    assert WRONG_PASSWORD not in page.content() and daemon.password not in page.content()


def test_external_torrents_are_marked_stopped_started_deleted_and_adopted(servers_page, transmission, swarm,
                                                                          alice, emptied):
    page, responses = servers_page
    dialogs = Dialogs(page)
    server = server_for(transmission, alice, name="Seedbox")
    kept = swarm.publish("outside-album", {"a.bin": 1 << 20, "b.bin": 300_000})
    doomed = swarm.publish("outside-doomed.bin", 400_000)
    with daemon_client(transmission) as client:  # added outside Flotilla
        for record in (kept, doomed):
            client.add_torrent(record.torrent_bytes)
            seed_to(swarm, record, transmission)
    for record in (kept, doomed):
        wait_until(lambda r=record: state_on(transmission, r.info_hash) == State.SEEDING, "the daemon to finish")

    page.reload()
    row = torrent_row(page, "outside-album")
    expect(row).to_be_visible(timeout=LONG)
    expect(row.locator(".badge")).to_have_text("external")
    expect(row.get_by_role("cell", name="Seedbox", exact=True)).to_be_visible()
    expect(row.locator("td").nth(2)).to_have_text("seeding")
    expect(row.locator("td").nth(3)).to_have_text("100%")

    row.get_by_role("button", name="Stop outside-album").click()
    expect(row.locator("td").nth(2)).to_have_text("stopped", timeout=LONG)
    assert state_on(transmission, kept.info_hash) == State.STOPPED
    row.get_by_role("button", name="Start outside-album").click()
    expect(row.locator("td").nth(2)).not_to_have_text("stopped", timeout=LONG)
    wait_until(lambda: state_on(transmission, kept.info_hash) != State.STOPPED, "the daemon to start it")

    # Delete: asked twice (remove it? its files too?); cancelling the first question changes nothing.
    doomed_row = torrent_row(page, "outside-doomed.bin")
    doomed_row.get_by_role("button", name="Delete outside-doomed.bin").click()
    expect(doomed_row).to_be_visible()
    assert dialogs.messages == ["Remove this torrent from its server?"]
    dialogs.answers = [True, True]
    doomed_row.get_by_role("button", name="Delete outside-doomed.bin").click()
    expect(doomed_row).to_have_count(0, timeout=LONG)
    assert dialogs.messages[-1] == "Also delete its downloaded files on the server?"
    assert state_on(transmission, doomed.info_hash) is None
    wait_until(lambda: not (transmission.download_dir / doomed.name).exists(), "its files to be deleted")

    assert not Job.objects.exists()
    row.get_by_role("button", name="Adopt outside-album").click()
    link = row.get_by_role("link", name="outside-album")
    expect(link).to_be_visible(timeout=LONG)
    expect(row.locator(".badge")).to_have_count(0)
    expect(row.get_by_role("button", name="Adopt outside-album")).to_have_count(0)
    job = Job.objects.get()
    assert (job.user, job.backend, job.info_hash) == (alice, server.backend_name, kept.info_hash)
    expect(link).to_have_attribute("href", f"/jobs/{job.pk}/")
    # The worker takes it from there: complete on the server, no path mapping, so the files stay there.
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, "the adopted job to complete")
    assert Job.objects.get(pk=job.pk).reason_code == "done_on_server"

    responses.assert_never_contain(page, transmission.password)
    assert transmission.password not in page.content()


def test_an_adopted_torrent_stops_and_starts_through_its_job(servers_page, transmission, swarm, alice, emptied):
    page, responses = servers_page
    server_for(transmission, alice, name="Seedbox")
    record = swarm.publish("slow-album", {"a.bin": 1 << 20})
    with daemon_client(transmission) as client:  # not seeded to it yet: it stays unfinished
        client.add_torrent(record.torrent_bytes)

    page.reload()
    row = torrent_row(page, "slow-album")
    row.get_by_role("button", name="Adopt slow-album").click()
    expect(row.get_by_role("link", name="slow-album")).to_be_visible(timeout=LONG)
    job = Job.objects.get()
    assert job.status == Status.DOWNLOADING

    row.get_by_role("button", name="Stop slow-album").click()  # a pause of the job
    expect(row.locator("td").nth(2)).to_have_text("stopped", timeout=LONG)
    assert state_on(transmission, record.info_hash) == State.STOPPED
    assert Job.objects.get(pk=job.pk).status == Status.PAUSED

    row.get_by_role("button", name="Start slow-album").click()  # a resume of the job
    expect(row.locator("td").nth(2)).not_to_have_text("stopped", timeout=LONG)
    assert state_on(transmission, record.info_hash) != State.STOPPED
    assert Job.objects.get(pk=job.pk).status != Status.PAUSED

    seed_to(swarm, record, transmission)
    expect(row.locator("td").nth(3)).to_have_text("100%", timeout=60_000)  # the page's own refresh shows it
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, "the job to complete")
    responses.assert_never_contain(page, transmission.password)


def test_delete_a_server_after_confirming(servers_page, transmission, alice):
    page, responses = servers_page
    dialogs = Dialogs(page)
    # Old box once answered in 5 ms, and is down now (nothing listens on its port).
    TorrentServerFactory(owner=alice, name="Old box", port=daemons.free_port(), status="error", latency_ms=5.0,
                         status_message="Cannot connect to Transmission (is it running, and is the address right?).")
    server_for(transmission, alice, name="Keeper")
    page.reload()
    row = server_row(page, "Old box")
    expect(row).to_be_visible()
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^error\s+Cannot connect to Transmission"))
    expect(row.locator("td").nth(3)).not_to_contain_text("ms")  # an old latency beside an error would mislead
    expect(page.locator("#torrent-errors")).to_contain_text("Old box Cannot connect", timeout=LONG)
    assert_torrents_head_on_one_line(page)
    expect(page.locator("#torrent-server-filter option")).to_have_text(["All", "Keeper", "Old box"])

    row.get_by_role("button", name="Delete Old box").click()  # cancelled
    expect(row).to_be_visible()
    assert dialogs.messages[0].startswith("Remove “Old box” from Flotilla? Its torrents stay on it")
    assert TorrentServer.objects.filter(name="Old box").exists()

    dialogs.answers = [True]
    row.get_by_role("button", name="Delete Old box").click()
    expect(row).to_have_count(0, timeout=LONG)
    expect(server_row(page, "Keeper")).to_be_visible()
    expect(page.locator("#torrent-server-filter option")).to_have_text(["All", "Keeper"])
    assert list(TorrentServer.objects.values_list("name", flat=True)) == ["Keeper"]

    page.reload()
    expect(server_row(page, "Keeper")).to_be_visible()
    expect(server_row(page, "Old box")).to_have_count(0)
    responses.assert_never_contain(page, transmission.password)
