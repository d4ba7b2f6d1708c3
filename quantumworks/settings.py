"""QuantumWorks Realtime settings: every value comes from the environment.

Unset DATABASE_URL / REDIS_URL give the embedded defaults (SQLite file, the
in-memory channel layer, process-local counters): one process, for the demo.
"""

from datetime import timedelta
from pathlib import Path

import environ

from realtime.redis_client import tcp_connection

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# Production has no default secret: a missing SECRET_KEY fails at start.
SECRET_KEY = env.str("SECRET_KEY", default="") or (
    "insecure-dev-only-key-do-not-use-in-production" if DEBUG else ""
)
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# Behind a TLS-terminating load balancer: secure cookies, HTTPS redirect, HSTS.
if env.bool("QW_HTTPS", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("QW_HSTS_SECONDS", default=3600)
    CSRF_TRUSTED_ORIGINS = env.list("QW_CSRF_TRUSTED_ORIGINS", default=[])
# Browser origins allowed to open a WebSocket, besides the server's own.
QW_ALLOWED_ORIGINS = env.list("QW_ALLOWED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "realtime",
    "accounts",
    "chat",
    "notifications",
    "tasks",
    "presence",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "realtime.rest.errors.IncidentMiddleware",
]

ROOT_URLCONF = "quantumworks.urls"
ASGI_APPLICATION = "quantumworks.asgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
# Under ASGI persistent connections leak (one per worker thread); the psycopg
# pool gives reuse without the leak. Tests switch the pool off (QW_DB_POOL=0).
_db["CONN_MAX_AGE"] = 0
if _db["ENGINE"] == "django.db.backends.postgresql" and env.bool("QW_DB_POOL", default=True):
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("QW_DB_POOL_MIN", default=2),
        "max_size": env.int("QW_DB_POOL_MAX", default=20),
        # How long a query waits for a connection: also how long a send takes
        # to fail (server_error, retry_after) while the database is down.
        "timeout": env.float("QW_DB_POOL_TIMEOUT", default=10),
    }
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the demo's request and socket threads share the file.
    _db.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer and shared counters --------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
QW_CHANNEL_PREFIX = env.str("QW_CHANNEL_PREFIX", default="qw")
# Beyond one Redis (docs/deployment.md). Channel-layer shards: channels-redis
# hashes every group and channel name onto one of these; the shared counters
# (rate limits, presence) stay on REDIS_URL. With Sentinel, each name in
# QW_REDIS_SENTINEL_MASTERS is one shard found through the sentinels, and the
# first one holds the counters (REDIS_URL may then be left unset).
QW_REDIS_LAYER_URLS = env.list("QW_REDIS_LAYER_URLS", default=[])
QW_REDIS_SENTINELS = [
    (host, int(port))
    for host, _, port in (
        entry.rpartition(":") for entry in env.list("QW_REDIS_SENTINELS", default=[])
    )
]
QW_REDIS_SENTINEL_MASTERS = env.list("QW_REDIS_SENTINEL_MASTERS", default=["mymaster"])
if QW_REDIS_SENTINELS and not REDIS_URL:
    REDIS_URL = f"redis+sentinel://{QW_REDIS_SENTINEL_MASTERS[0]}"  # Redis is on; never dialled
# Longer than channels-redis's 5 s blocking read, or idle consumers die with 1011.
_REDIS_OPTIONS = {"socket_timeout": 30, "socket_keepalive": True, "health_check_interval": 15}
if QW_REDIS_SENTINELS:
    _LAYER_HOSTS = [
        {"sentinels": QW_REDIS_SENTINELS, "master_name": name, **_REDIS_OPTIONS}
        for name in QW_REDIS_SENTINEL_MASTERS
    ]
else:
    _LAYER_HOSTS = [
        {"address": url, **_REDIS_OPTIONS, **tcp_connection(url)}
        for url in (QW_REDIS_LAYER_URLS or [REDIS_URL])
    ]
# "pubsub" (default): a group_send is one PUBLISH and a receive is a push. At
# 1,000 msgs/s of chat (the load benchmark of 2026-11-25, since replaced by
# `make bench`, docs/performance.md) it delivered with p50 0.12-0.19 s at
# 0.93 ms CPU/msg; the list-based core layer fell 18 s behind at 3 ms/msg.
# Both are at-most-once; the inbox, gap repair and the heartbeat catch-up make
# delivery whole either way.
QW_CHANNEL_LAYER = env.str("QW_CHANNEL_LAYER", default="pubsub")
if REDIS_URL and QW_CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.PubSubChannelLayer",
            "CONFIG": {"hosts": _LAYER_HOSTS, "prefix": QW_CHANNEL_PREFIX},
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": _LAYER_HOSTS,
                "prefix": QW_CHANNEL_PREFIX,
                # Capacity counts messages queued for one *process*, not one
                # socket: a burst to a busy process must not be dropped for a
                # small number.
                "capacity": env.int("QW_LAYER_CAPACITY", default=20000),
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth --------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "realtime.rest.openapi.AutoSchema",
    # SPEC §7: the REST API speaks JSON. Form bodies cannot say null or an
    # empty list, so the schema's JSON shapes were wrong for them; a 415 now.
    # A view that takes uploads names its parser itself
    # (`parser_classes = [MultiPartParser]`).
    "DEFAULT_PARSER_CLASSES": ["realtime.rest.parsers.JSONParser"],
    # APIClient's bodies in tests: what clients send.
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # The browsable API only with DEBUG: `?format=api` is a 404 in production.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    "EXCEPTION_HANDLER": "realtime.rest.errors.api_exception_handler",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("QW_ACCESS_TOKEN_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("QW_REFRESH_TOKEN_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": False,
    "UPDATE_LAST_LOGIN": False,
    # Sub-second `iat`: logout refuses tokens issued before it, not a sign-in right after.
    "AUTH_TOKEN_CLASSES": ("realtime.auth.tokens.AccessToken",),
    "TOKEN_OBTAIN_SERIALIZER": "realtime.auth.tokens.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "realtime.auth.tokens.TokenRefreshSerializer",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "QuantumWorks Realtime API",
    "DESCRIPTION": "History and control endpoints of the QuantumWorks real-time backend.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request and response shapes differ (write-only passwords, request-only
    # string constraints): separate components, so neither leaks into the other.
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and docs are public: a bad token must not fail them (the docs
    # template re-reads request.user and raised the 401 again, as a 500).
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # email and push share one choice set (SPEC §10): one schema enum, one name.
    "ENUM_NAME_OVERRIDES": {"NotificationLevelEnum": "notifications.models.Level"},
}

# --- Realtime ----------------------------------------------------------------
QW_HEARTBEAT_SECONDS = env.float("QW_HEARTBEAT_SECONDS", default=30)
QW_EVENT_RETENTION_DAYS = env.int("QW_EVENT_RETENTION_DAYS", default=30)
QW_RATE_CHAT_PER_MIN = env.int("QW_RATE_CHAT_PER_MIN", default=100)
QW_RATE_TYPING_PER_SEC = env.int("QW_RATE_TYPING_PER_SEC", default=5)
QW_REPLAY_BATCH = env.int("QW_REPLAY_BATCH", default=300)
QW_DB_THREADS = env.int("QW_DB_THREADS", default=8)
QW_WRITER_MAX_BATCH = env.int("QW_WRITER_MAX_BATCH", default=200)
QW_WRITER_CONCURRENCY = env.int("QW_WRITER_CONCURRENCY", default=2)
QW_MAX_FRAME_BYTES = 64 * 1024
# What one socket may hold for a client that does not read (SPEC §5 4008):
# past the budget it is closed. Replays and gap repairs pause at half of it
# until the client has read what is queued, closing after the timeout.
QW_SOCKET_SEND_BUDGET_BYTES = max(
    env.int("QW_SOCKET_SEND_BUDGET_BYTES", default=1024 * 1024), 2 * QW_MAX_FRAME_BYTES
)
QW_SOCKET_SEND_TIMEOUT_SECONDS = env.float("QW_SOCKET_SEND_TIMEOUT_SECONDS", default=10)
# A request head (a WebSocket handshake included) not complete this long after
# the connection opened is answered 408 and closed (servers/request_head.py).
QW_HEADER_TIMEOUT_SECONDS = env.float("QW_HEADER_TIMEOUT_SECONDS", default=5)
# The server process's garbage collector (servers/gc_settings.py, measured there):
# CPython's defaults are 700, 10, 10.
QW_GC_THRESHOLDS = tuple(
    int(value) for value in env.list("QW_GC_THRESHOLDS", default=["20000", "20", "10"])
)
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = QW_MAX_FRAME_BYTES
DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = QW_MAX_FRAME_BYTES

# --- Reaching people who are not on the page (SPEC §10, notifications/) -------
# Links in emails and pushes start with this (no trailing slash).
QW_PUBLIC_URL = env.str("QW_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# EMAIL_URL in django-environ's form (smtp://user:pass@host:587, smtp+tls://…);
# the embedded default prints emails to the console. Providers' HTTP APIs:
# django-anymail (docs/deployment.md).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="QuantumWorks <noreply@localhost>")
EMAIL_TIMEOUT = env.float("QW_EMAIL_TIMEOUT_SECONDS", default=10)
QW_EMAIL_DELAY_SECONDS = env.float("QW_EMAIL_DELAY_SECONDS", default=120)
# Web Push: the base64url raw 32-byte P-256 private key (as web-push tools print
# it) and a mailto:/https: contact. Unset in the embedded default: a key is
# generated into QW_DATA_DIR; unset with DATABASE_URL: Web Push is off.
QW_VAPID_PRIVATE_KEY = env.str("QW_VAPID_PRIVATE_KEY", default="")
QW_VAPID_SUBJECT = env.str("QW_VAPID_SUBJECT", default="mailto:admin@localhost")
QW_PUSH_ALLOW_LOCAL = env.bool("QW_PUSH_ALLOW_LOCAL", default=False)
QW_PUSH_TTL_SECONDS = env.int("QW_PUSH_TTL_SECONDS", default=86400)
QW_PUSH_TIMEOUT_SECONDS = env.float("QW_PUSH_TIMEOUT_SECONDS", default=10)
# The worker (manage.py notify_worker). A claim is held this long: longer than
# any one send can take (the timeouts above), or a slow send could be retried
# by another worker while it is still in flight.
QW_NOTIFY_LEASE_SECONDS = env.float("QW_NOTIFY_LEASE_SECONDS", default=60)
QW_NOTIFY_POLL_SECONDS = env.float("QW_NOTIFY_POLL_SECONDS", default=5)
QW_NOTIFY_CONCURRENCY = env.int("QW_NOTIFY_CONCURRENCY", default=8)
QW_NOTIFY_MAX_ATTEMPTS = env.int("QW_NOTIFY_MAX_ATTEMPTS", default=8)
# The first retry's delay; each next one doubles (full jitter, capped at an hour).
QW_NOTIFY_BACKOFF_SECONDS = env.float("QW_NOTIFY_BACKOFF_SECONDS", default=5)
# The embedded default (SQLite) runs the worker inside the server process.
QW_NOTIFY_IN_PROCESS = env.bool(
    "QW_NOTIFY_IN_PROCESS", default=DATABASES["default"]["ENGINE"].endswith("sqlite3")
)

# --- Deployment: proxy, Redis shards and Sentinel, PgBouncer (docs/deployment.md) ---
# X-Forwarded-For / -Proto are believed only from these peers (addresses or
# CIDRs); default loopback, where deploy/nginx.conf.template runs. Set it
# empty for a process exposed with no proxy in front.
QW_TRUSTED_PROXIES = env.list("QW_TRUSTED_PROXIES", default=["127.0.0.1", "::1"])

# --- Chat as people use it (SPEC §11) ----------------------------------------
QW_EDIT_WINDOW_SECONDS = env.int("QW_EDIT_WINDOW_SECONDS", default=3600)
QW_ATTACHMENT_MAX_BYTES = env.int("QW_ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
QW_ATTACHMENT_URL_SECONDS = env.int("QW_ATTACHMENT_URL_SECONDS", default=300)
# The largest request body the process reads at all (realtime.rest.body_limit):
# an upload and its multipart envelope. Larger declared bodies get 413 unread.
QW_MAX_REQUEST_BYTES = QW_ATTACHMENT_MAX_BYTES + 64 * 1024
# Files the process keeps (attachments in the embedded default).
QW_DATA_DIR = Path(env.str("QW_DATA_DIR", default=str(BASE_DIR / "data")))
# Uploads over 256 KiB go to a temporary file while they arrive, not to memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
QW_S3_BUCKET = env.str("QW_S3_BUCKET", default="")
if QW_S3_BUCKET:
    # Any S3-compatible service (AWS, MinIO, Ceph, R2) through django-storages.
    # Files are private: downloads go through the signed links of chat.attachments.
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": QW_S3_BUCKET,
            "endpoint_url": env.str("QW_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("QW_S3_REGION", default="") or None,
            "access_key": env.str("QW_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("QW_S3_SECRET_ACCESS_KEY", default="") or None,
            "location": env.str("QW_S3_PREFIX", default=""),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": QW_DATA_DIR / "media"},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- i18n / static -----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_tokens": {"()": "quantumworks.logredact.RedactTokensFilter"},
        "one_line_security": {"()": "quantumworks.logredact.OneLineSecurityLog"},
        "library_faults": {"()": "realtime.faults.LibraryFaults"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            # A StreamHandler whose writes leave the event loop (quantumworks/logqueue.py).
            "class": "quantumworks.logqueue.QueuedConsoleHandler",
            "formatter": "plain",
            "filters": ["redact_tokens", "one_line_security"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # Its receive loop logs a traceback per shard per second while Redis is down.
        "channels_redis.pubsub": {"filters": ["library_faults"]},
    },
}
