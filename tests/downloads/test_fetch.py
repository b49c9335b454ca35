"""The URL fetcher refuses what a user must not reach: other schemes, loopback, private and link-local
targets (directly, through a name, or through a redirect), oversized answers, endless redirects."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from downloads import fetch
from downloads.fetch import FetchRefused


class Site(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict, bytes]] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers and status != 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(host: str):
    server = ThreadingHTTPServer((host, 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def site(settings):
    """A site on 127.0.0.1 that the operator allowed, and one on 127.0.0.2 that stays internal."""
    settings.TORRENT_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    Site.routes = {}
    allowed, internal = _serve("127.0.0.1"), _serve("127.0.0.2")
    yield (f"http://127.0.0.1:{allowed.server_address[1]}", f"http://127.0.0.2:{internal.server_address[1]}",
           Site.routes)
    for server in (allowed, internal):
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.torrent", "gopher://x/", "data:,x",
                                 "javascript:alert(1)", "//no-scheme/a.torrent"])
def test_other_schemes_are_refused(url):
    with pytest.raises(FetchRefused) as refused:
        fetch.fetch_torrent(url)
    assert refused.value.code == "url_scheme"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.torrent", "http://localhost:8000/a.torrent", "http://[::1]/a.torrent",
    "http://10.1.2.3/a.torrent", "http://192.168.0.1/a.torrent", "http://172.16.5.4/a.torrent",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://[fd00::1]/x",
    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://2130706433/x", "https://127.0.0.1:8443/x",
])
def test_internal_targets_are_refused(url):
    with pytest.raises(FetchRefused) as refused:
        fetch.fetch_torrent(url)
    assert refused.value.code == "url_internal"


def test_credentials_in_the_link_are_refused():
    with pytest.raises(FetchRefused) as refused:
        fetch.fetch_torrent("http://user:pass@example.com/a.torrent")
    assert refused.value.code == "url_invalid"


def test_an_allowed_network_is_fetched_and_a_redirect_to_an_internal_one_is_not(site):
    allowed, internal, routes = site
    routes["/a.torrent"] = (200, {"Content-Length": "5"}, b"d4:ae")
    routes["/to-internal"] = (302, {"Location": f"{internal}/a.torrent"}, b"")
    routes["/to-local"] = (301, {"Location": "/a.torrent"}, b"")
    assert fetch.fetch_torrent(f"{allowed}/a.torrent").data == b"d4:ae"
    assert fetch.fetch_torrent(f"{allowed}/to-local").data == b"d4:ae"  # relative redirect, re-checked
    with pytest.raises(FetchRefused) as refused:
        fetch.fetch_torrent(f"{allowed}/to-internal")
    assert refused.value.code == "url_internal" and "127.0.0.2" in refused.value.detail
    with pytest.raises(FetchRefused):
        fetch.fetch_torrent(f"{internal}/a.torrent")


def test_the_operator_may_allow_internal_targets(site, settings):
    _, internal, routes = site
    routes["/a.torrent"] = (200, {"Content-Length": "5"}, b"d4:ae")
    settings.TORRENT_URL_ALLOW_INTERNAL = True
    assert fetch.fetch_torrent(f"{internal}/a.torrent").data == b"d4:ae"


def test_a_redirect_to_a_magnet_is_the_answer(site):
    allowed, _, routes = site
    magnet = "magnet:?xt=urn:btih:" + "c" * 40
    routes["/get"] = (302, {"Location": magnet}, b"")
    assert fetch.fetch_torrent(f"{allowed}/get").magnet == magnet


def test_size_is_capped_by_length_and_while_reading(site, settings):
    allowed, _, routes = site
    settings.TORRENT_MAX_BYTES = 1000
    routes["/big"] = (200, {"Content-Length": "5000"}, b"x" * 5000)
    routes["/sneaky"] = (200, {"Connection": "close"}, b"x" * 5000)  # no Content-Length: capped while read
    routes["/odd"] = (200, {"Content-Length": "\u00b2", "Connection": "close"}, b"x" * 5000)  # not a number
    for path in ("/big", "/sneaky", "/odd"):
        with pytest.raises(FetchRefused) as refused:
            fetch.fetch_torrent(f"{allowed}{path}")
        assert refused.value.code == "url_too_large"


def test_redirect_loops_end(site, settings):
    allowed, _, routes = site
    settings.TORRENT_URL_MAX_REDIRECTS = 3
    routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(FetchRefused) as refused:
        fetch.fetch_torrent(f"{allowed}/loop")
    assert refused.value.code == "url_redirects"


def test_errors_from_the_site_are_reported(site):
    allowed, _, _ = site
    with pytest.raises(FetchRefused) as refused:
        fetch.fetch_torrent(f"{allowed}/missing")
    assert refused.value.code == "url_http_error"
