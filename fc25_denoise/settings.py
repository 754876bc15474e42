"""Settings, all read from the environment with laptop-safe defaults (see README, "Configuration")."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from fc25_denoise.environment import env_bool, env_ice_servers, env_int, env_list, env_rate, env_seconds

BASE_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("fc25_denoise")


DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "users",
    "streams",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    # Every middleware is async-capable, so a request never waits for a thread of asgiref's
    # sync bridge (which shutdown would then wait on): servestatic, not the sync-only WhiteNoise.
    "servestatic.middleware.ServeStaticMiddleware",
    "fc25_denoise.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it answers the sign-in views' refusals (users/throttling.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fc25_denoise.urls"
ASGI_APPLICATION = "fc25_denoise.asgi.application"

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

DATABASES = {
    # An empty DATABASE_URL means "not set" (CI runs the SQLite variant with DATABASE_URL=).
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.User"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("CHANNELS_PREFIX", "asgi")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "servestatic.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# The pages load nothing from elsewhere and run no inline script (keep it so): a strict CSP.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "img-src": [SELF, "data:"],  # the favicon is an inline SVG (templates/base.html)
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Only this site's own pages may ask for the microphone (never an embedding page).
PERMISSIONS_POLICY = {"microphone": ["self"]}

# JSON API (fc25_denoise/api.py): a CSRF refusal under /api/ is JSON too.
CSRF_FAILURE_VIEW = "fc25_denoise.api.csrf_failure"
# Bodies above 64 KB are refused with 413: by the API helper (fc25_denoise/api.py) and, when
# Daphne serves clients itself, by Content-Length before any of it is read (request_guard.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024


# --- deploy: ICE / TURN (fc25_denoise/ice.py, docs/deploy.md) ---
# Used by the pages and by the server's own peers (through fc25_denoise.ice.ice_servers_for).
ICE_SERVERS = env_ice_servers("ICE_SERVERS")
# TURN REST API credentials (coturn use-auth-secret): with TURN_SECRET set, each signed-in user
# gets a username "<expiry>:<user id>" and password base64(HMAC-SHA1(secret, username)).
TURN_SECRET = os.environ.get("TURN_SECRET", "")
TURN_URLS = env_list("TURN_URLS")
TURN_TTL_S = env_int("TURN_TTL_S", 6 * 3600)
if TURN_SECRET and not TURN_URLS:
    raise ImproperlyConfigured("TURN_SECRET is set but TURN_URLS is empty: list the turn: URLs of the server")
if not all(url.startswith(("turn:", "turns:")) for url in TURN_URLS):
    raise ImproperlyConfigured(f"TURN_URLS must be turn: or turns: URLs, got {TURN_URLS!r}")
if TURN_TTL_S < 60:
    raise ImproperlyConfigured(f"TURN_TTL_S must be at least 60 seconds, got {TURN_TTL_S}")
# --- end deploy: ICE / TURN ---

# Media / streaming settings (used by streams/).
RECORD_RAW = env_bool("RECORD_RAW", default=True)
MAX_LISTENERS_PER_STREAM = env_int("MAX_LISTENERS_PER_STREAM", 100)
# Presence sockets one user may hold open at once, over all processes (tabs, devices); the next
# one is closed with 4429 (streams/presence/consumers.py).
MAX_PRESENCE_SOCKETS = env_int("MAX_PRESENCE_SOCKETS", 20)

# Behind the nginx template (its systemd unit sets BEHIND_PROXY=1) the proxy says the client's
# scheme and address; serving clients directly (the Daphne-TLS unit), nothing in a request may.
BEHIND_PROXY = env_bool("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# --- deploy: production mode (DEBUG=0, see docs/deploy.md) ---
SILENCED_SYSTEM_CHECKS: list[str] = []
SESSION_COOKIE_HTTPONLY = True
# The pages' JavaScript reads the CSRF cookie (static/js/api.js), so it cannot be HTTP-only.
CSRF_COOKIE_HTTPONLY = False
# Monitoring may ask Daphne directly over plain HTTP on loopback; nothing secret is on these.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    # Opt-in (docs/deploy.md): on a LAN name or a shared parent domain they would bind every
    # sibling host to HTTPS, and preload is hard to undo.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
    # check --deploy warns about each while it is off; off is the deliberate default here.
    SILENCED_SYSTEM_CHECKS += [
        *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
        *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
    ]
    SECURE_CONTENT_TYPE_NOSNIFF = True
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS must list the site's host names when DEBUG=0 (e.g. ALLOWED_HOSTS=talk.example.org)"
        )
    if DATABASES["default"].get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DEBUG=0 needs PostgreSQL: set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/NAME"
        )
    if not REDIS_URL:
        raise ImproperlyConfigured(
            "DEBUG=0 needs Redis for the channel layer and presence: set REDIS_URL=redis://127.0.0.1:6379/0"
        )
# --- end deploy: production mode ---

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes: its start-up banner and each failed sign-in are INFO; a lockout is a WARNING.
    "loggers": {"django.channels.server": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- users (accounts & friends API) ---
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take SQLite's write lock at BEGIN and wait up to 20 s for each other, instead of
    # failing with "database is locked" when two transactions upgrade their locks at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    # The default in-memory test database uses SQLite's shared cache, whose table locks never
    # wait, so concurrent writers fail; a file per test process does wait.
    DATABASES["default"].setdefault("TEST", {}).setdefault(
        "NAME", str(Path(tempfile.gettempdir()) / f"realtime-denoise-test-{os.getpid()}.sqlite3")
    )

# Throttling of sign-in and sign-up (users/throttling.py, docs/deploy.md "Throttling"), counted
# in the default cache: Redis with REDIS_URL (shared by every process), else this process's memory.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache"
        if REDIS_URL
        else "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "rd-cache"),
    }
}
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["username"]  # per account; per address is django-ratelimit's job below
AXES_USERNAME_CALLABLE = "users.throttling.username_of"
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 5)  # answered; the next is refused
AXES_FAILURE_LIMIT = "users.throttling.failure_limit"
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "users.throttling.locked_out"


LOGIN_RATE_PER_IP = env_rate("LOGIN_RATE_PER_IP", "30/15m")
SIGNUP_RATE_PER_IP = env_rate("SIGNUP_RATE_PER_IP", "10/h")
SIGNUP_RATE_PER_NAME = env_rate("SIGNUP_RATE_PER_NAME", "5/15m")
# axes warns that it does not count per address; django-ratelimit does (the *_RATE_PER_IP above).
SILENCED_SYSTEM_CHECKS += ["axes.W006"]
if not REDIS_URL:  # one process without Redis: its own memory is the whole truth
    SILENCED_SYSTEM_CHECKS += ["axes.W001"]
# --- end users ---


# --- presence (streams/presence/service.py) ---
# A user whose last socket closed stays "online" this long (a page reload is not an absence).
PRESENCE_GRACE_S = env_seconds("PRESENCE_GRACE_S", 5.0)
# Each process refreshes its heartbeat key every PRESENCE_HEARTBEAT_S; a process whose key is
# older than PRESENCE_TTL_S is dead: its users go offline after the grace, its streams end (for
# friends within TTL + one heartbeat of a crash: 4 s by default).
PRESENCE_TTL_S = env_seconds("PRESENCE_TTL_S", 3.0)
PRESENCE_HEARTBEAT_S = env_seconds("PRESENCE_HEARTBEAT_S", min(1.0, PRESENCE_TTL_S / 3))
if not 0 < PRESENCE_HEARTBEAT_S < PRESENCE_TTL_S:
    raise ImproperlyConfigured("PRESENCE_HEARTBEAT_S must be above 0 and below PRESENCE_TTL_S")
PRESENCE_REDIS_PREFIX = os.environ.get("PRESENCE_REDIS_PREFIX", "presence")
if REDIS_URL:
    # redis-py 8 reads with a 5 s socket timeout by default, the same length as channels-redis
    # 4.3's blocking BZPOPMIN: idle consumers then die with "Timeout reading from" (1011) and
    # closing sockets hang 5 s (django/channels_redis#422). Blocking reads need no client timeout.
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [{"address": REDIS_URL, "socket_timeout": None}]
# --- end presence ---

# --- live path (streams/live/registry.py, streams/live/session.py) ---
# A live broadcaster whose presence has been seen and then stays offline this long (after
# presence's own PRESENCE_GRACE_S) loses the stream: the page is gone, the beacon was lost.
STREAM_OFFLINE_GRACE_S = env_seconds("STREAM_OFFLINE_GRACE_S", 5.0)
# Listener connections one user may hold to one stream (a newer one replaces the oldest), and
# how long a listener's connection may take from its offer to connected before it is closed.
LISTENER_CONNECTIONS_PER_USER = max(1, env_int("LISTENER_CONNECTIONS_PER_USER", 3))
LISTENER_CONNECT_TIMEOUT_S = env_seconds("LISTENER_CONNECT_TIMEOUT_S", 10.0)
# A broadcaster whose page reloads or whose connection drops resumes the same stream (session,
# recording, listeners) with a new offer within this long; 0 ends the stream at once.
STREAM_RESUME_GRACE_S = env_seconds("STREAM_RESUME_GRACE_S", 10.0)
# --- end live path ---


# --- scale-out: Janus as the SFU (streams/sfu/, docs/deploy.md "Scaling out") ---
# Janus's HTTP API on a private address, e.g. http://10.0.0.5:8088/janus. Unset: listeners are
# served by the process that owns the stream (the in-process hub, one process).
JANUS_URL = os.environ.get("JANUS_URL", "").rstrip("/")
JANUS_API_SECRET = os.environ.get("JANUS_API_SECRET", "")
JANUS_ADMIN_KEY = os.environ.get("JANUS_ADMIN_KEY", "")
# Where this process sends its streams' RTP (Janus's private address); default: JANUS_URL's host.
JANUS_RTP_HOST = os.environ.get("JANUS_RTP_HOST", "")
if JANUS_URL:
    from urllib.parse import urlsplit

    _janus = urlsplit(JANUS_URL)
    if _janus.scheme not in ("http", "https") or not _janus.hostname:
        raise ImproperlyConfigured(f"JANUS_URL must look like http://10.0.0.5:8088/janus, got {JANUS_URL!r}")
    if not (JANUS_API_SECRET and JANUS_ADMIN_KEY):
        raise ImproperlyConfigured("JANUS_URL is set: set JANUS_API_SECRET and JANUS_ADMIN_KEY too")
    if not REDIS_URL:
        raise ImproperlyConfigured("JANUS_URL needs REDIS_URL: listeners may reach any process")
    JANUS_RTP_HOST = JANUS_RTP_HOST or _janus.hostname
LOGGING["loggers"]["httpx"] = {"level": "WARNING"}  # one INFO line per Janus request otherwise
# --- end scale-out ---

# --- request guard (fc25_denoise/request_guard.py, the Daphne-TLS unit) ---
# A request's head, then its body, must arrive within these, or the connection gets 408.
REQUEST_HEAD_TIMEOUT_S = env_seconds("REQUEST_HEAD_TIMEOUT_S", 10.0)
REQUEST_BODY_TIMEOUT_S = env_seconds("REQUEST_BODY_TIMEOUT_S", 30.0)
# --- end request guard ---
