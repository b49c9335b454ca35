"""A faithful fake of Cloudflare Turnstile's siteverify API, over real HTTP on 127.0.0.1.

Cloudflare cannot be reached from here, so Flotilla's Turnstile check (accounts/botcheck.py) is tested
against this server. It answers as Cloudflare documents
(developers.cloudflare.com/turnstile/get-started/server-side-validation/ and .../troubleshooting/testing/):

- `POST /turnstile/v0/siteverify` with a form (`application/x-www-form-urlencoded` or `multipart/form-data`)
  or JSON body: `secret` and `response` required, `remoteip` and `idempotency_key` optional. The answer is
  always JSON: `success`, `error-codes` (a list, empty on success), and on success `challenge_ts` (ISO 8601,
  when the widget was solved), `hostname`, `action`, `cdata` and `metadata`.
- Error codes: `missing-input-secret`, `invalid-input-secret`, `missing-input-response`,
  `invalid-input-response` (unknown, malformed, longer than 2048 characters, or issued for another widget),
  `bad-request`, `timeout-or-duplicate` (already validated, or older than 300 s), `internal-error`.
- A token is valid once. A retry of the same validation with the same `idempotency_key` gets the first
  answer again (Cloudflare's documented way to retry safely); without it, or with another key, the token
  is spent.
- The documented dummy secret keys: `1x0000000000000000000000000000000AA` always passes,
  `2x0000000000000000000000000000000AA` always fails (`invalid-input-response`),
  `3x0000000000000000000000000000000AA` answers "token already spent" (`timeout-or-duplicate`). Real
  widget secrets refuse the dummy token `XXXX.DUMMY.TOKEN.XXXX` that the dummy sitekeys hand the browser.

What a browser would get from the widget, a test gets from `issue_token(sitekey, ...)`. Time is the fake's
own clock (`advance(seconds)`), so expiry is tested without waiting. Faults: `fail_next(status, body)`
answers the next request(s) with that status (e.g. Cloudflare's 5xx), `stop()` takes the service away.
Every request is recorded in `requests` (method, content type, parsed fields) for the contract test.
"""

from __future__ import annotations

import datetime
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

VERIFY_PATH = "/turnstile/v0/siteverify"
TOKEN_TTL = 300
TOKEN_MAX = 2048
DUMMY_TOKEN = "XXXX.DUMMY.TOKEN.XXXX"
PASS_SECRET = "1x0000000000000000000000000000000AA"
FAIL_SECRET = "2x0000000000000000000000000000000AA"
SPENT_SECRET = "3x0000000000000000000000000000000AA"
DUMMY_SECRETS = (PASS_SECRET, FAIL_SECRET, SPENT_SECRET)


@dataclass
class Widget:
    sitekey: str
    secret: str
    hostname: str


@dataclass
class Token:
    sitekey: str
    issued_at: float
    hostname: str
    action: str
    cdata: str
    spent_by: str | None = None  # the idempotency key of the validation that spent it ("" for none)
    first_answer: dict | None = None


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    fields: dict[str, str]


@dataclass
class FakeTurnstile:
    widgets: dict[str, Widget] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    offset: float = 0.0
    _faults: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    base_url: str = ""

    # --- what the dashboard and the widget would do -------------------------------------------------

    def add_widget(self, sitekey: str, secret: str, hostname: str = "flotilla.test") -> Widget:
        widget = Widget(sitekey, secret, hostname)
        self.widgets[sitekey] = widget
        return widget

    def issue_token(self, sitekey: str, *, action: str = "", cdata: str = "", hostname: str | None = None) -> str:
        """The token the widget puts in `cf-turnstile-response` once the visitor passes the challenge."""
        widget = self.widgets[sitekey]
        token = "0." + secrets.token_urlsafe(240)  # real tokens are opaque, a few hundred characters
        with self._lock:
            self.tokens[token] = Token(sitekey, self.now(), hostname or widget.hostname, action, cdata)
        return token

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def fail_next(self, status: int = 500, body: str = "", *, times: int = 1) -> None:
        self._faults.extend([(status, body)] * times)

    # --- siteverify --------------------------------------------------------------------------------

    def siteverify(self, fields: dict[str, str]) -> dict:
        secret, response = fields.get("secret", ""), fields.get("response", "")
        key = fields.get("idempotency_key", "")
        if not secret:
            return _fail("missing-input-secret")
        if secret in DUMMY_SECRETS:
            return self._dummy(secret, response)
        widget = next((w for w in self.widgets.values() if w.secret == secret), None)
        if widget is None:
            return _fail("invalid-input-secret")
        if not response:
            return _fail("missing-input-response")
        with self._lock:
            token = self.tokens.get(response) if len(response) <= TOKEN_MAX else None
            if token is None or token.sitekey != widget.sitekey:
                return _fail("invalid-input-response")
            if token.spent_by is not None:
                if key and token.spent_by == key and token.first_answer is not None:
                    return token.first_answer
                return _fail("timeout-or-duplicate")
            token.spent_by = key
            if self.now() - token.issued_at > TOKEN_TTL:
                token.first_answer = _fail("timeout-or-duplicate")
            else:
                token.first_answer = self._success(token.issued_at, token.hostname, token.action, token.cdata)
            return token.first_answer

    def _dummy(self, secret: str, response: str) -> dict:
        if not response:
            return _fail("missing-input-response")
        if secret == FAIL_SECRET:
            return _fail("invalid-input-response")
        if secret == SPENT_SECRET:
            return _fail("timeout-or-duplicate")
        return self._success(self.now(), "example.com", "", "")

    @staticmethod
    def _success(solved_at: float, hostname: str, action: str, cdata: str) -> dict:
        stamp = datetime.datetime.fromtimestamp(solved_at, datetime.UTC).isoformat(timespec="milliseconds")
        return {"success": True, "error-codes": [], "challenge_ts": stamp.replace("+00:00", "Z"),
                "hostname": hostname, "action": action, "cdata": cdata, "metadata": {"interactive": False}}

    # --- running -----------------------------------------------------------------------------------

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> FakeTurnstile:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="turnstile-fake", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def verify_url(self) -> str:
        return f"{self.base_url}{VERIFY_PATH}"


def _fail(*codes: str) -> dict:
    return {"success": False, "error-codes": list(codes)}


def parse_body(content_type: str, body: bytes) -> dict[str, str] | None:
    """The fields of a siteverify request body, or None when it cannot be read (`bad-request`)."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            data = json.loads(body or b"{}")
            return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else None
        if kind == "multipart/form-data":
            message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
            return {part.get_param("name", header="content-disposition"): part.get_content()
                    for part in message.iter_parts()}
        if kind in ("application/x-www-form-urlencoded", ""):
            return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    except (ValueError, UnicodeDecodeError):
        return None
    return None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTurnstile
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet in tests
        pass

    def _answer(self, status: int, payload: dict | str) -> None:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(payload, dict) else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.fake.requests.append(Recorded("GET", self.path, "", {}))
        self._answer(405, _fail("bad-request"))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = self.headers.get("Content-Type", "")
        fields = parse_body(content_type, body)
        self.fake.requests.append(Recorded("POST", self.path, content_type, fields or {}))
        if self.fake._faults:
            status, text = self.fake._faults.pop(0)
            self._answer(status, text or _fail("internal-error"))
        elif self.path != VERIFY_PATH:
            self._answer(404, _fail("bad-request"))
        elif fields is None:
            self._answer(400, _fail("bad-request"))
        else:
            self._answer(200, self.fake.siteverify(fields))
