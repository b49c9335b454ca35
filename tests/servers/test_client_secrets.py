"""Server credentials never ride in a client's error: not in its message, not in the exceptions chained to it."""

from __future__ import annotations

import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from servers.clients import ClientError
from servers.clients.rtorrent import RTorrentClient

PASSWORD = "pw-7c1f0e2d9b8a"


class _Unauthorized(BaseHTTPRequestHandler):
    """An HTTP front of rTorrent that refuses every request (what a wrong password meets)."""

    seen: list[str] = []

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="rtorrent"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def refusing_front():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_rtorrent_over_http_sends_credentials_in_a_header_never_in_its_errors(refusing_front):
    _Unauthorized.seen.clear()
    client = RTorrentClient(transport="http", host="127.0.0.1", port=refusing_front, username="flotilla",
                            password=PASSWORD)
    with pytest.raises(ClientError) as caught:
        client.check()
    assert caught.value.code == "server_auth"
    assert _Unauthorized.seen == ["Basic ZmxvdGlsbGE6cHctN2MxZjBlMmQ5Yjhh"], "basic auth of flotilla:" + PASSWORD
    # xmlrpc's ProtocolError quotes the URL it called: with credentials in the URL they were in every traceback.
    chain = "".join(traceback.format_exception(caught.value))
    assert "ProtocolError for 127.0.0.1:" in chain and PASSWORD not in chain


def test_a_client_error_masks_urls_quoted_from_a_library():
    error = ClientError(f"Transmission refused the request: http://me:{PASSWORD}@nas:9091/rpc?token=abc")
    assert PASSWORD not in str(error) and "abc" not in error.message
    assert error.message == "Transmission refused the request: http://***@nas:9091/rpc?token=***"
