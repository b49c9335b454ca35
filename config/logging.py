"""JSON-lines logging. Every line carries the request id of the request (or task) it belongs to.

Secrets never reach a log line: `SecretMaskFilter` (installed on the one console handler every process
uses, see settings.LOGGING) masks, in the formatted message, in every extra field and in the exception
text, the query string and userinfo of every URL and path segments shaped like a tracker passkey.
libtorrent's tracker alerts, for one, quote the announce URL whole (`announce?passkey=…`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import traceback
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
client_ip_var: contextvars.ContextVar[str] = contextvars.ContextVar("client_ip", default="")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}

MASK = "***"
# A URL: a scheme then `//` (http, https, udp, wss…) or a magnet (`magnet:?`), up to whitespace, a quote or a
# bracket. The same with its separators percent-encoded (a URL inside another URL's query, a magnet's `tr=`).
_URL = re.compile(r"""\b[a-z][a-z0-9+.-]{1,15}:(?://|\?)[^\s"'<>\\`]*""", re.IGNORECASE)
_ENCODED_URL = re.compile(r"""\b[a-z][a-z0-9+.-]{1,15}%3A(?:%2F%2F|%3F)[^\s"'<>\\`&]*""", re.IGNORECASE)
# user:password@host with no scheme in front (xmlrpc quotes `user:pass@host:port/RPC2` in its errors).
_BARE_USERINFO = re.compile(r"(?<![\w%/:.@-])[^\s/:@\"'<>]+:[^\s/@\"'<>]+@(?=[\w.-]+(?::\d+)?(?:[/\s\"']|$))")
# A path segment that looks like a credential: 16+ letters/digits with both letters and digits
# (`/announce/<32 hex>`, `/<passkey>/announce`), or 16+ hex digits. Words and version numbers stay.
_SECRET_SEGMENT = re.compile(r"^(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}$|^[0-9a-fA-F]{16,}$")
_QUERY_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.\[\]-]{0,31}$")


def _mask_query(query: str, sep: str, eq: str) -> str:
    """Keep short parameter names (what was sent, for debugging), never values."""
    parts = []
    for part in query.split(sep):
        key = part.split(eq, 1)[0]
        parts.append(f"{key}{eq}{MASK}" if eq in part and _QUERY_KEY.match(key) else MASK)
    return sep.join(parts)


def _mask_url(url: str) -> str:
    scheme, rest = url.split(":", 1)
    if rest.startswith("?"):  # magnet:?xt=…&tr=…: every value may carry a passkey or a private hash
        return f"{scheme}:?{_mask_query(rest[1:], '&', '=')}"
    rest = rest[2:]
    fragment = ""
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
        fragment = "#" + MASK
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
        query = "?" + _mask_query(query, "&", "=")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    path = "/".join(MASK if _SECRET_SEGMENT.match(seg) else seg for seg in path.split("/"))
    return f"{scheme}://{authority}{slash}{path}{query}{fragment}"


def _mask_encoded_url(url: str) -> str:
    scheme, rest = re.split(r"%3A", url, maxsplit=1, flags=re.IGNORECASE)
    if rest[:3].upper() == "%3F":
        return f"{scheme}%3A%3F{MASK}"
    host = re.split(r"%2F|%3F|%23", rest[6:], maxsplit=1, flags=re.IGNORECASE)[0]
    if "%40" in host.upper():
        host = MASK + "%40" + re.split(r"%40", host, flags=re.IGNORECASE)[-1]
    return f"{scheme}%3A%2F%2F{host}%2F{MASK}" if len(rest) > 6 + len(host) else f"{scheme}%3A%2F%2F{host}"


def mask_secrets(text: str) -> str:
    """`text` with the query, fragment and userinfo of every URL and passkey-shaped path segments masked."""
    if ":" not in text and "%3" not in text.upper():
        return text  # the common case: no URL at all
    text = _URL.sub(lambda m: _mask_url(m.group(0)), text)
    text = _ENCODED_URL.sub(lambda m: _mask_encoded_url(m.group(0)), text)
    return _BARE_USERINFO.sub(MASK + "@", text)


def mask_value(value: object) -> object:
    """A structured extra with every string in it masked (JSON types kept; anything else becomes text)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {str(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(v) for v in value]
    return mask_secrets(str(value))


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class SecretMaskFilter(logging.Filter):
    """Masks URLs' secrets in the message, the extras, the exception and the stack of every record.

    A handler filter, so it sees every record the handler writes whichever logger it came from (libtorrent
    alerts in the engine, django-q2 in the worker, daphne, third-party libraries). The record is rewritten
    in place (other handlers, caplog included, see the masked record): the message is formatted once and
    masked, the exception is rendered once to masked `exc_text`, which formatters use as is."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what logging would show, masked
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = mask_secrets(message), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, mask_value(value))
        if record.exc_info and not record.exc_text:
            # Formatters use a record's exc_text when it is set, instead of rendering exc_info again.
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        # Structured extras passed with `extra={...}`.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_text:  # rendered (and masked) by SecretMaskFilter
            line["exc"] = record.exc_text
        elif record.exc_info:
            line["exc"] = mask_secrets(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str)
