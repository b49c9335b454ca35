"""config.asgi_server.unsent: what the send timeout watches counts the socket's own send queue, so a client
that takes bytes out of a full kernel buffer shows progress even while Twisted's buffer does not move."""

from __future__ import annotations

import socket

from config.asgi_server import unsent
from tests.e2e.conftest import wait_for


class Transport:
    """The parts of a Twisted TCP transport that `unsent` reads, over a real socket."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock, self.dataBuffer, self.offset, self._tempDataLen = sock, buffered, 0, 0

    def getHandle(self) -> socket.socket:
        return self.sock


def test_unsent_counts_the_socket_send_queue_and_drops_as_the_client_reads():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        peer, _ = server.accept()
        with client, peer:
            peer.setblocking(False)
            sent = 0
            try:
                while True:  # fill the client's window and the server's send queue
                    sent += peer.send(b"x" * 65536)
            except BlockingIOError:
                pass
            transport = Transport(peer, buffered=b"y" * 1000)
            before = unsent(transport)
            assert 1000 < before <= sent + 1000
            client.settimeout(10)
            taken = 0
            while taken < sent // 2:  # a slow reader takes some bytes; nothing more is written
                taken += len(client.recv(65536))
            wait_for(lambda: unsent(transport) < before, "the send queue shrank as the client read")


def test_unsent_is_none_for_a_transport_it_cannot_read():
    assert unsent(object()) is None
    assert unsent(None) is None
