"""The HTTP plumbing the indexer fakes share (MyAnonamouse, Torznab, YTS, Nyaa): a threaded server on
127.0.0.1, a log of every request, and hostile answers on demand for any path:

- `fail_next(status, body, content_type, times)`: the next answers are this one (500s, 429s, HTML pages);
- `hostile = "html" | "huge" | "bomb" | "non_utf8" | "redirect_loop" | "drip" | "hang"`: every answer is an
  HTML page with 200, a gigantic body, an XML billion-laughs, Latin-1 bytes, a redirect to itself forever, a
  body dripped a few bytes a second, or nothing at all until the client gives up;
- `delay`: seconds before each answer (a slow indexer);
- `gate`: a `threading.Barrier` every answer waits at, shared by several fakes: they answer only once all of
  them were asked (a client that asks one after another meets a broken barrier instead).
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

BOMB = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                   for i in range(1, 10))
        + b']>\n<rss><channel><title>&lol9;</title></channel></rss>')
HTML = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Please log in</body></html>"


def command_line(description: str, default_port: int, argv: list[str] | None = None,
                 add_arguments=None) -> argparse.Namespace:
    """The options every fake takes when run by hand (`python -m tests.fakes.<name>_fake`): --host, --port."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1")
    if add_arguments:
        add_arguments(parser)
    return parser.parse_args(argv)


def serve_until_interrupted(fake: FakeIndexerServer, banner: str) -> None:
    """Print where the fake listens and keep serving until Ctrl-C."""
    print(banner, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (a timeout test) is not an error of the fake


class FakeIndexerServer:
    name = "indexer-fake"

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.faults: list[Answer] = []
        self.hostile = ""
        self.delay = 0.0
        self.gate: threading.Barrier | None = None
        self.lock = threading.Lock()
        self.base_url = ""
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    # --- control -----------------------------------------------------------------------------------
    def fail_next(self, status: int, body: bytes | str = b"", content_type: str = "text/html", times: int = 1):
        body = body.encode() if isinstance(body, str) else body
        with self.lock:
            self.faults.extend([Answer(status, body, content_type)] * times)

    def serve(self, port: int = 0, host: str = "127.0.0.1"):
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server((host, port), handler)
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name,
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def paths(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    # --- to implement ------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: list[tuple[str, str]], headers) -> Answer:
        raise NotImplementedError

    # --- plumbing ----------------------------------------------------------------------------------
    def _answer(self, method: str, raw_path: str, headers) -> Answer | str:
        url = urlsplit(raw_path)
        query = parse_qsl(url.query, keep_blank_values=True)
        with self.lock:
            self.requests.append({"method": method, "path": url.path, "query": query, "headers": dict(headers)})
            fault = self.faults.pop(0) if self.faults else None
        if self.delay:
            self._stop.wait(self.delay)
        if self.gate is not None:
            try:
                self.gate.wait()
            except threading.BrokenBarrierError:
                return Answer(503, b"the other indexers were not asked at the same time", "text/plain")
        if fault:
            return fault
        if self.hostile:
            return self.hostile
        return self.handle(method, url.path, query, headers)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeIndexerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        answer = self.fake._answer("GET", self.path, self.headers)
        if isinstance(answer, str):
            return self._hostile(answer)
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def _hostile(self, mode: str) -> None:
        if mode == "html":
            return self._send(Answer(200, HTML, "text/html"))
        if mode == "bomb":
            return self._send(Answer(200, BOMB, "application/xml"))
        if mode == "non_utf8":
            body = '<?xml version="1.0" encoding="UTF-8"?><rss><channel><item><title>Caf\xe9</title></item>'
            return self._send(Answer(200, body.encode("latin-1") + b"</channel></rss>", "application/xml"))
        if mode == "redirect_loop":
            return self._send(Answer(302, b"", "text/plain", (("Location", self.path),)))
        if mode == "huge":  # 64 MiB announced and streamed, without a Content-Length cap on our side
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.end_headers()
            try:
                self.wfile.write(b"<rss><channel>")
                for _ in range(64 * 16):
                    self.wfile.write(b"<item><title>x</title></item>" * 2200)
            except OSError:
                pass
            return None
        if mode == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                while not self.fake._stop.wait(0.2):
                    self.wfile.write(b"<")
                    self.wfile.flush()
            except OSError:
                pass
            return None
        if mode == "hang":
            self.fake._stop.wait(120)
            return None
        raise ValueError(mode)
