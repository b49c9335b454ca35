"""Flotilla settings: everything comes from the environment (and an optional `.env`).

Defaults make a single-host install work with nothing else running: SQLite under DATA_DIR, django-q2's
ORM broker, in-memory cache. `DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to Redis for the
django-q2 broker and the cache. Every setting is listed with its default in README.md.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import environ

from config.keys import load_or_create_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
DOWNLOADS_DIR = DATA_DIR / "downloads"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or load_or_create_key(
    DATA_DIR / "secret_key", "SECRET_KEY", losing_it="Without it sessions and download links stop working."
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- HTTPS: off for a loopback install, all on with one switch behind TLS ------------------------
HTTPS = env.bool("HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    "encrypted_model_fields",
    "axes",
    "accounts",
    "billing",
    "downloads",
    "seedr",
    "servers",
    "streaming",
    "indexers",
    "audiobooks.apps.AudiobooksConfig",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "seedr.context_processors.seedr",
                "servers.context_processors.servers",
                "config.nav.sidebar",
                "billing.context_processors.plan_badge",
            ],
        },
    },
]

# --- Database: SQLite in DATA_DIR unless DATABASE_URL says otherwise ------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'flotilla.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let web, worker and engine share one SQLite file without "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so real subprocesses in e2e tests share it; per pid so parallel runs don't collide.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test_flotilla_{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis (optional): django-q2 broker and cache -------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Namespace of Flotilla's keys in Redis (the django-q2 queue, the cache), so that two installs or two test runs
# can share one Redis server; `make test` gives each run its own.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="flotilla")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": REDIS_KEY_PREFIX}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

Q_CLUSTER = {
    "name": REDIS_KEY_PREFIX,
    "workers": env.int("WORKER_PROCESSES", default=2),
    "timeout": 600,
    "retry": 660,
    "max_attempts": 1,
    "save_limit": 500,
    "catch_up": False,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.2

# Each web process relays the JobEvent outbox to its own websocket clients, so the channel layer only
# ever carries messages inside one process: in-memory is correct even when Redis is configured
# (a shared Redis layer would deliver every event once per web process). See docs/architecture.md.
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000, "expiry": 120}}
}

# --- Encryption at rest ---------------------------------------------------------------------------
FIELD_ENCRYPTION_KEY = env.list("FIELD_ENCRYPTION_KEY", default=[]) or [
    load_or_create_key(
        DATA_DIR / "field_encryption.key", "FIELD_ENCRYPTION_KEY", fernet=True,
        losing_it="Without it the encrypted data (magnets, passwords, tokens) cannot be read.",
    )
]
# Key of the HMACs stored beside encrypted values that must be found by equality (info-hashes).
# Separate from the encryption keys so rotating those does not orphan the lookups; never change it.
LOOKUP_HASH_KEY = env.str("LOOKUP_HASH_KEY", default="") or load_or_create_key(
    DATA_DIR / "lookup_hash.key", "LOOKUP_HASH_KEY",
    losing_it="Without it duplicate detection and the info-hash blocklist stop matching.",
)

# --- Accounts -------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "downloads:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=True)
REQUIRE_EMAIL_VERIFICATION = env.bool("REQUIRE_EMAIL_VERIFICATION", default=False)
ACCEPTABLE_USE_VERSION = env.int("ACCEPTABLE_USE_VERSION", default=1)
# Rate limits, "count/period" ("5/hour", "10/15m"; "0" = off), counted in the cache (accounts/throttle.py).
RATE_LIMIT_REGISTER_IP = env.str("RATE_LIMIT_REGISTER_IP", default="5/hour")
RATE_LIMIT_PASSWORD_RESET_EMAIL = env.str("RATE_LIMIT_PASSWORD_RESET_EMAIL", default="3/hour")
RATE_LIMIT_PASSWORD_RESET_IP = env.str("RATE_LIMIT_PASSWORD_RESET_IP", default="10/hour")
RATE_LIMIT_VERIFY_RESEND_EMAIL = env.str("RATE_LIMIT_VERIFY_RESEND_EMAIL", default="5/hour")
RATE_LIMIT_VERIFY_RESEND_IP = env.str("RATE_LIMIT_VERIFY_RESEND_IP", default="10/hour")
RATE_LIMIT_WS_CONNECT_IP = env.str("RATE_LIMIT_WS_CONNECT_IP", default="120/minute")
RATE_LIMIT_WS_CONNECT_USER = env.str("RATE_LIMIT_WS_CONNECT_USER", default="60/minute")
# Bot check on registration (accounts/botcheck.py): "altcha" (self-hosted proof of work, no third party),
# "turnstile" (Cloudflare; needs both keys) or "off". Checked at startup by accounts/checks.py.
BOT_CHECK = env.str("BOT_CHECK", default="altcha")
ALTCHA_HMAC_KEY = env.str("ALTCHA_HMAC_KEY", default="")  # empty: derived from SECRET_KEY
ALTCHA_COST = env.int("ALTCHA_COST", default=5000)  # PBKDF2 iterations per try; ~256 tries on average
ALTCHA_EXPIRY = env.int("ALTCHA_EXPIRY", default=600)  # seconds a challenge may be solved and submitted in
TURNSTILE_SITE_KEY = env.str("TURNSTILE_SITE_KEY", default="")
TURNSTILE_SECRET_KEY = env.str("TURNSTILE_SECRET_KEY", default="")
TURNSTILE_VERIFY_URL = env.str(
    "TURNSTILE_VERIFY_URL", default="https://challenges.cloudflare.com/turnstile/v0/siteverify"
)

# django-axes: lock a (username, IP) pair after repeated failures; the lockout expires by itself.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# --- Email: console by default, SMTP via EMAIL_URL (smtp+tls://user:pass@host:587) ----------------
_email = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(_email)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Flotilla <flotilla@localhost>")

# --- Jobs, events, delivery -----------------------------------------------------------------------
TORRENT_MAX_BYTES = env.int("TORRENT_MAX_BYTES", default=10 * 1024 * 1024)
TORRENT_MAX_FILES = env.int("TORRENT_MAX_FILES", default=100_000)
BATCH_MAX_LINES = env.int("BATCH_MAX_LINES", default=500)
MAGNET_MAX_LENGTH = env.int("MAGNET_MAX_LENGTH", default=8192)
MAGNET_MAX_TRACKERS = env.int("MAGNET_MAX_TRACKERS", default=200)
DEFAULT_BACKEND = env.str("DEFAULT_BACKEND", default="engine")
SIGNED_URL_MAX_AGE = env.int("SIGNED_URL_MAX_AGE", default=15 * 60)
SHARE_MAX_DAYS = env.int("SHARE_MAX_DAYS", default=7)  # longest expiry a user may give a share link
# --- Streaming (streaming/stream.py, docs/architecture.md "Streaming") ----------------------------------
STREAM_TIMEOUT = env.float("STREAM_TIMEOUT", default=30.0)  # seconds for the first needed piece, else 408
SEND_TIMEOUT = env.float("SEND_TIMEOUT", default=60.0)  # s a client may read nothing of a body (config/asgi_server.py)
# A player re-requests ranges with the same URL for the whole film: its signed link lives this long.
STREAM_LINK_MAX_AGE = env.int("STREAM_LINK_MAX_AGE", default=4 * 3600)
STREAM_WINDOW_BYTES = env.int("STREAM_WINDOW_BYTES", default=16 * 1024 * 1024)  # deadline window ahead of a reader
STREAM_DEADLINE_STEP_MS = env.int("STREAM_DEADLINE_STEP_MS", default=50)
STREAM_MIN_AVAILABLE_MB = env.int("STREAM_MIN_AVAILABLE_MB", default=256)  # below it: 503 (memory pressure)
STREAM_RETRY_AFTER = env.int("STREAM_RETRY_AFTER", default=5)
# Completed files sent by a reverse proxy: "" (off), "x-accel-redirect" (nginx) or "x-sendfile" (Caddy/Apache).
STREAM_OFFLOAD = env.str("STREAM_OFFLOAD", default="")
STREAM_OFFLOAD_PREFIX = env.str("STREAM_OFFLOAD_PREFIX", default="/_protected/")  # nginx internal location
# "Play without downloading" jobs are removed with their data after this long with no byte read
# (streaming/ephemeral.py).
STREAM_IDLE_MINUTES = env.int("STREAM_IDLE_MINUTES", default=30)
# Preload queue (streaming/preload.py): items on screen whose head and tail pieces are fetched at once.
MAX_PRELOAD_CONCURRENCY = env.int("MAX_PRELOAD_CONCURRENCY", default=3)
PROGRESS_EVENT_INTERVAL = env.float("PROGRESS_EVENT_INTERVAL", default=1.0)
PROGRESS_EVENT_RETENTION_HOURS = env.int("PROGRESS_EVENT_RETENTION_HOURS", default=24)
EVENT_RELAY_INTERVAL = env.float("EVENT_RELAY_INTERVAL", default=0.1)
EVENT_RELAY_GAP_GRACE = env.float("EVENT_RELAY_GAP_GRACE", default=2.0)
# Seconds between two syncs of remote backends (Seedr, servers) while any of their jobs is active.
SYNC_INTERVAL = env.float("SYNC_INTERVAL", default=3.0)
# Failed attempts (submit, bring-home) after which a job fails with `retries_exhausted` (the dead letter).
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=8)
ENGINE_HEARTBEAT_TIMEOUT = env.int("ENGINE_HEARTBEAT_TIMEOUT", default=60)
# Each worker cluster beats from a thread every WORKER_HEARTBEAT_TIMEOUT / 4 s (downloads/heartbeats.py).
WORKER_HEARTBEAT_TIMEOUT = env.int("WORKER_HEARTBEAT_TIMEOUT", default=60)

# --- Prometheus (/metrics, config/metrics.py) -----------------------------------------------------
# Addresses or networks (REMOTE_ADDR) that may scrape without a key; otherwise an admin's API key.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# Every process writes its in-process observations here; set before anything imports prometheus_client.
METRICS_DIR = Path(env.str("PROMETHEUS_MULTIPROC_DIR", default=str(DATA_DIR / "metrics")))
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
# Lease of a bring-home or post-processing run, renewed while it works: a killed worker's run is taken over
# by the next sweep this long after its last renewal.
BRING_HOME_LEASE_SECONDS = env.float("BRING_HOME_LEASE_SECONDS", default=60.0)
# The checksum post-processor: a SHA256SUMS manifest of every finished job's files (off by default).
CHECKSUM_MANIFEST = env.bool("CHECKSUM_MANIFEST", default=False)

# --- Built-in engine (manage.py runengine) ---------------------------------------------------------
# Jobs are claimed under this name. It stays the same across restarts, so a restarted engine takes its
# own jobs back at once; a second engine on the same host needs its own name.
ENGINE_NAME = env.str("ENGINE_NAME", default="") or f"engine@{socket.gethostname()}"
ENGINE_LISTEN_INTERFACES = env.str("ENGINE_LISTEN_INTERFACES", default="0.0.0.0:6881,[::]:6881")
ENGINE_DOWNLOAD_RATE_LIMIT = env.int("ENGINE_DOWNLOAD_RATE_LIMIT", default=0)  # bytes/s, 0 = unlimited
ENGINE_UPLOAD_RATE_LIMIT = env.int("ENGINE_UPLOAD_RATE_LIMIT", default=0)
ENGINE_CONNECTIONS_LIMIT = env.int("ENGINE_CONNECTIONS_LIMIT", default=200)
ENGINE_MAX_TORRENTS = env.int("ENGINE_MAX_TORRENTS", default=20)
ENGINE_DHT = env.bool("ENGINE_DHT", default=True)
ENGINE_LSD = env.bool("ENGINE_LSD", default=True)
ENGINE_UPNP = env.bool("ENGINE_UPNP", default=True)
ENGINE_NATPMP = env.bool("ENGINE_NATPMP", default=True)
ENGINE_POLL_INTERVAL = env.float("ENGINE_POLL_INTERVAL", default=0.5)
ENGINE_RESUME_SAVE_INTERVAL = env.float("ENGINE_RESUME_SAVE_INTERVAL", default=30.0)
# Seeding also ends when no peer has taken data for this long (0 = only the plan's limits). 30 min is one
# usual tracker announce interval: every peer of the swarm has had a chance to find this seed by then.
SEED_IDLE_MINUTES = env.float("SEED_IDLE_MINUTES", default=30.0)
# Raw libtorrent settings_pack names → values (JSON), applied last: the escape hatch for tuning.
ENGINE_LIBTORRENT_SETTINGS = env.json("ENGINE_LIBTORRENT_SETTINGS", default={})
ENGINE_STATE_DIR = DATA_DIR / "engine"
# The engine's stream channel (downloads/engine/streams.py): "host:port", port 0 = any free one, published in
# its heartbeat; empty = no streaming while downloading. Loopback unless web and engine are on other hosts.
ENGINE_STREAM_LISTEN = env.str("ENGINE_STREAM_LISTEN", default="127.0.0.1:0")
# Extra backend modules to import at start-up (each registers itself); used by tests and plugins.
EXTRA_BACKEND_MODULES = env.list("EXTRA_BACKEND_MODULES", default=[])

# --- Seedr.cc backend (seedr/) -------------------------------------------------------------------
SEEDR_ENABLED = env.bool("SEEDR_ENABLED", default=True)
# Seedr jobs running at once per user (a free Seedr account downloads one torrent at a time).
SEEDR_BATCH_CONCURRENCY = env.int("SEEDR_BATCH_CONCURRENCY", default=1)
# Where finished Seedr downloads are streamed before being moved into DATA_DIR/downloads (same filesystem
# keeps that move a rename).
SEEDR_TEMP_DIR = Path(env.str("SEEDR_TEMP_DIR", default=str(DATA_DIR / "seedr-tmp")))
SEEDR_SIZE_LIMIT_MB = env.int("SEEDR_SIZE_LIMIT_MB", default=0)  # largest Seedr download brought home; 0 = any
SEEDR_STALL_TIMEOUT = env.int("SEEDR_STALL_TIMEOUT", default=1800)  # seconds at 0 % before a magnet fails
SEEDR_MULTIFILE_MODE = env.str("SEEDR_MULTIFILE_MODE", default="files")  # "files" (resumable) or "archive"
SEEDR_INSIGHTS_MINUTES = env.int("SEEDR_INSIGHTS_MINUTES", default=15)
SEEDR_API_URL = env.str("SEEDR_API_URL", default="https://www.seedr.cc/api")
SEEDR_OAUTH_URL = env.str("SEEDR_OAUTH_URL", default="https://www.seedr.cc/oauth_test")

# --- The user's own torrent servers (servers/) ---------------------------------------------------
# Servers on loopback/private/link-local addresses and rTorrent unix sockets: your own servers usually live
# on your own network; turn it off on a shared instance where users must not reach the host's network.
SERVERS_ALLOW_INTERNAL = env.bool("SERVERS_ALLOW_INTERNAL", default=True)
SERVERS_TIMEOUT = env.float("SERVERS_TIMEOUT", default=10.0)  # seconds per request to a server
SERVERS_LIST_CONCURRENCY = env.int("SERVERS_LIST_CONCURRENCY", default=8)  # servers asked at once for a listing
# Adding a torrent by URL: Flotilla fetches it (SSRF rules in downloads/fetch.py).
TORRENT_URL_ALLOW_INTERNAL = env.bool("TORRENT_URL_ALLOW_INTERNAL", default=False)
TORRENT_URL_ALLOWED_NETWORKS = env.list("TORRENT_URL_ALLOWED_NETWORKS", default=[])  # CIDRs allowed anyway
TORRENT_URL_MAX_REDIRECTS = env.int("TORRENT_URL_MAX_REDIRECTS", default=5)
TORRENT_URL_TIMEOUT = env.float("TORRENT_URL_TIMEOUT", default=15.0)

# --- qBittorrent Web API v2 (downloads/qbittorrent_api, mounted under /qbittorrent/) ---------------
# The path under which the *arr apps see DOWNLOADS_DIR (their container's mount of it); save_path and
# content_path are reported under it. Empty: DOWNLOADS_DIR itself (the apps run on this host).
QBITTORRENT_REMOTE_PATH = env.str("QBITTORRENT_REMOTE_PATH", default="")
QBITTORRENT_SESSION_SECONDS = env.int("QBITTORRENT_SESSION_SECONDS", default=3600)  # idle SID lifetime
# Like qBittorrent's WebUI\\MaxAuthenticationFailCount and BanDuration: failed logins before an IP is banned.
QBITTORRENT_MAX_AUTH_FAILS = env.int("QBITTORRENT_MAX_AUTH_FAILS", default=5)
QBITTORRENT_BAN_SECONDS = env.int("QBITTORRENT_BAN_SECONDS", default=3600)

# --- Indexers and search (indexers/) -------------------------------------------------------------
# Users' indexers on loopback/private addresses (your Jackett on 192.168.x): on by default like servers; turn
# it off on a shared instance. The operator's shared indexers may always be internal.
INDEXERS_ALLOW_INTERNAL = env.bool("INDEXERS_ALLOW_INTERNAL", default=True)
INDEXERS_MAX_RESPONSE_BYTES = env.int("INDEXERS_MAX_RESPONSE_BYTES", default=8 * 1024 * 1024)
INDEXERS_SEARCH_TIMEOUT = env.float("INDEXERS_SEARCH_TIMEOUT", default=25.0)  # the whole fan-out, at most
INDEXERS_SEARCH_CONCURRENCY = env.int("INDEXERS_SEARCH_CONCURRENCY", default=16)
INDEXERS_RATE_LIMITER = env.str("INDEXERS_RATE_LIMITER", default="auto")  # auto, cache or database
INDEXERS_CAPS_MAX_AGE_HOURS = env.float("INDEXERS_CAPS_MAX_AGE_HOURS", default=24.0)
SEARCH_RESULT_TTL_DAYS = env.float("SEARCH_RESULT_TTL_DAYS", default=7.0)

# --- Audiobooks (audiobooks/): merge a finished download into one tagged M4B, publish it to a library -----
# The folder the operator allows audiobook libraries in; each user's library is a folder under it (their
# setting, default their user id). Staging happens inside the library (same filesystem: publish = rename).
AUDIOBOOK_LIBRARY_ROOT = env.str("AUDIOBOOK_LIBRARY_ROOT", default=str(DATA_DIR / "audiobooks"))
AUDIOBOOK_FFMPEG = env.str("AUDIOBOOK_FFMPEG", default="ffmpeg")
AUDIOBOOK_FFPROBE = env.str("AUDIOBOOK_FFPROBE", default="ffprobe")
AUDIOBOOK_MAX_FILES = env.int("AUDIOBOOK_MAX_FILES", default=1000)  # more audio files: refused
AUDIOBOOK_MAX_BITRATE = env.int("AUDIOBOOK_MAX_BITRATE", default=128_000)  # AAC; never above the source's
# Most bytes ffmpeg may write per output file (RLIMIT_FSIZE); 0: twice the estimate plus 64 MiB.
AUDIOBOOK_OUTPUT_LIMIT_BYTES = env.int("AUDIOBOOK_OUTPUT_LIMIT_BYTES", default=0)
AUDIOBOOK_PROBE_TIMEOUT = env.float("AUDIOBOOK_PROBE_TIMEOUT", default=60.0)
AUDIOBOOK_PROBE_WORKERS = env.int("AUDIOBOOK_PROBE_WORKERS", default=2)  # ffprobe runs at once (checking)
AUDIOBOOK_COVER_MAX_PX = env.int("AUDIOBOOK_COVER_MAX_PX", default=1400)  # longest side after scaling
AUDIOBOOK_COVER_MAX_PIXELS = env.int("AUDIOBOOK_COVER_MAX_PIXELS", default=40_000_000)  # larger: left out
AUDIOBOOK_COVER_MAX_BYTES = env.int("AUDIOBOOK_COVER_MAX_BYTES", default=2 * 1024 * 1024)
AUDIOBOOK_ABS_TIMEOUT = env.float("AUDIOBOOK_ABS_TIMEOUT", default=10.0)  # the Audiobookshelf scan request

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",  # documents the error responses
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "config.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_RATE_LIMIT", default="6000/hour")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flotilla API",
    "DESCRIPTION": "Remote download manager API. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:  # runserver-style use without collectstatic
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
WHITENOISE_USE_FINDERS = True
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=TORRENT_MAX_BYTES + 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Logging: JSON lines with the request id on every line ----------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logging.RequestIdFilter"},
        # URLs' query strings and userinfo, and passkey-shaped path segments, masked in every line.
        "mask_secrets": {"()": "config.logging.SecretMaskFilter"},
    },
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "mask_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # httpx logs every request URL at INFO; Seedr's carry the access token and signed file links.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
