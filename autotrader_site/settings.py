"""Django settings for AutoTrader.

Every setting is read once from the environment (and `.env`) through django-environ.
A value that cannot be parsed stops start-up with `ImproperlyConfigured` naming the variable,
so a typo never silently trades with a default.
"""

from __future__ import annotations

import os
import re
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from strategies.setups.names import BUILTIN_SETUPS

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
_dotenv = Path(os.environ.get("AUTOTRADER_ENV_FILE", BASE_DIR / ".env"))
if _dotenv.is_file():
    environ.Env.read_env(str(_dotenv), overwrite=False)


# --- typed readers: each names the variable in its error -------------------------------------
def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value if value != "" else None


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int | None, *, minimum: int | None = None) -> int | None:
    value = _raw(name)
    if value is None:
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name}={parsed} must be >= {minimum}")
    return parsed


def env_float(
    name: str,
    default: float | None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    value = _raw(name)
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if parsed != parsed:  # NaN
        raise ImproperlyConfigured(f"{name} must be a finite number")
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name}={parsed} must be >= {minimum}")
    if maximum is not None and parsed > maximum:
        raise ImproperlyConfigured(f"{name}={parsed} must be <= {maximum}")
    return parsed


def env_decimal(name: str, default: str | None, *, minimum: str | None = None) -> Decimal | None:
    value = _raw(name)
    if value is None:
        return None if default is None else Decimal(default)
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={value!r} is not a decimal number") from None
    if not parsed.is_finite():
        raise ImproperlyConfigured(f"{name} must be a finite number")
    if minimum is not None and parsed < Decimal(minimum):
        raise ImproperlyConfigured(f"{name}={parsed} must be >= {minimum}")
    return parsed


def env_time(name: str, default: str) -> time:
    value = _raw(name) or default
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ImproperlyConfigured(f"{name}={value!r} is not a time of day HH:MM")
    return time(int(match[1]), int(match[2]))


_SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")


def env_symbols(name: str, default: str) -> list[str]:
    value = _raw(name)
    value = default if value is None else value
    symbols = [s.strip().upper() for s in value.split(",") if s.strip()]
    for symbol in symbols:
        if not _SYMBOL_RE.match(symbol):
            raise ImproperlyConfigured(f"{name}: {symbol!r} is not a ticker symbol")
    return symbols


def env_symbol_map(name: str, default: str) -> dict[str, str]:
    value = _raw(name)
    value = default if value is None else value
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in value.split(","))):
        source, sep, target = pair.partition(":")
        source, target = source.strip().upper(), target.strip().upper()
        if not sep or not _SYMBOL_RE.match(source) or not _SYMBOL_RE.match(target):
            raise ImproperlyConfigured(f"{name}: {pair!r} is not SOURCE:EXECUTION")
        mapping[source] = target
    return mapping


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_raw(name) or default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


# --- Django core ---------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    # A stable per-checkout key for the embedded default; production sets DJANGO_SECRET_KEY.
    _key_file = BASE_DIR / "state" / ".secret_key"
    try:
        SECRET_KEY = _key_file.read_text().strip()
    except OSError:
        import secrets

        SECRET_KEY = secrets.token_urlsafe(50)
        try:
            _key_file.parent.mkdir(parents=True, exist_ok=True)
            _key_file.write_text(SECRET_KEY)
        except OSError:
            pass
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files, no CDN
    "django_celery_beat",
    "channels",
    "marketdata",
    "strategies",
    "risk",
    "trading",
    "analytics",
    "wiring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "autotrader_site.urls"
WSGI_APPLICATION = "autotrader_site.wsgi.application"
ASGI_APPLICATION = "autotrader_site.asgi.application"

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
            ]
        },
    }
]

STATE_DIR = Path(env_str("STATE_DIR", str(BASE_DIR / "state")))
STATE_DIR.mkdir(parents=True, exist_ok=True)

# --- database: PostgreSQL when DATABASE_URL is set, else SQLite under state/ -----------------
TIMESCALEDB = env_choice("TIMESCALEDB", "auto", ("auto", "1", "0"))
_database_url = env_str("DATABASE_URL", "")
if _database_url:
    # The spec's example uses SQLAlchemy's "postgresql+psycopg2://" scheme: accept it.
    _database_url = re.sub(r"^postgres(ql)?\+psycopg2?://", "postgres://", _database_url)
    try:
        _db = env.db_url_config(_database_url)
    except Exception as exc:  # environ raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    if _db.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL (or unset for SQLite)")
    if TIMESCALEDB == "1":
        _db["ENGINE"] = "timescale.db.backends.postgresql"
    _db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})
    # DB_POOL_MAX_SIZE>0: a psycopg pool per process. Use it for the ASGI web process, which runs
    # each request on its own thread (persistent connections would pile up per thread).
    DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0, minimum=0)
    if DB_POOL_MAX_SIZE:
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 10}
    _test_name = env_str("TEST_DB_NAME", "")
    if _test_name:
        _db["TEST"] = {"NAME": _test_name}
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": STATE_DIR / "autotrader.sqlite3",
            "OPTIONS": {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
USING_POSTGRES = DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Timescale policies (applied only where the extension exists).
TIMESCALE_CHUNK_INTERVAL = env_str("TIMESCALE_CHUNK_INTERVAL", "1 day")
TIMESCALE_COMPRESS_AFTER_DAYS = env_int("TIMESCALE_COMPRESS_AFTER_DAYS", 7, minimum=0)
TIMESCALE_TICKS_RETENTION_DAYS = env_int("TIMESCALE_TICKS_RETENTION_DAYS", 30, minimum=0)
TIMESCALE_BARS_RETENTION_DAYS = env_int("TIMESCALE_BARS_RETENTION_DAYS", 0, minimum=0)

# --- Redis: Celery broker, cache, channel layer ----------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must be a redis:// URL")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "autotrader"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CACHE_KEY_PREFIX", "autotrader")},
        }
    }
else:
    CACHES = {
        "default": {
            # File-based so the web process and the replay process share it.
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(STATE_DIR / "cache"),
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Bar-close tasks sharded by symbol over BAR_CLOSE_SHARDS queues `bars.<k>`
# (trading/bar_routing.py);
# 1 = all on the default queue. With N > 1 every shard needs a worker (`-Q celery,bars.<k>`).
BAR_CLOSE_SHARDS = env_int("BAR_CLOSE_SHARDS", 1, minimum=1)
CELERY_TASK_ROUTES = ("trading.bar_routing.route_task",)
# with REMAP_SIGTERM=SIGQUIT (Procfile, compose) SIGTERM gives running tasks this long, then
# cancels them (acks_late: redelivered) so the worker is gone within SHUTDOWN_DEADLINE_SEC
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env_float(
    "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 1.0, minimum=0.0
)
CELERY_IMPORTS = ("autotrader_site.worker_lifecycle",)  # the bounded stop's watchdog
# Redis redelivers a task whose worker died (acks_late) after this many seconds (kombu's default).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_SEC", 3600, minimum=1)
}
# A publish (a task, a retry) made while Redis restarts waits for it (~30 s) instead of failing
# after kombu's default 0.6 s: a retry that cannot be published is a lost bar.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 20,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 2.0,
}
# Task events off unless asked: three event messages per task cost a bar-close task ~15 ms of
# worker CPU (benchmarks/bench_bar_cost.py --mode worker). Flower switches them on at run time
# (its --enable_events, on by default), so its task views still work while it runs.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", False)
# A Redis restart must not end a worker: Redis' own errors while it goes down or loads its
# data (LOADING, a reset mid-reply) are channel errors, which end the consumer unless retried;
# reconnect forever (None), at start-up too, and retry the result writes of tasks that ran.
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# ... and tearing down the connection it broke must not end the worker either (Celery 5.7 can
# raise AttributeError there: autotrader_site/worker_consumer.py)
CELERY_WORKER_CONSUMER = "autotrader_site.worker_consumer:Consumer"
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 20
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "autotrader_site.beat:HeartbeatScheduler"  # DatabaseScheduler + heartbeat

# --- i18n / time ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
MARKET_TIMEZONE = "America/New_York"

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(STATE_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
LOGIN_URL = "/admin/login/"

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "autotrader_site.pagination.EstimatedCountPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "writes": env_str("API_WRITE_THROTTLE", "120/min"),
        "login": env_str("API_LOGIN_THROTTLE", "10/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AutoTrader API",
    "DESCRIPTION": "Signals, risk, orders and positions of the AutoTrader service.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs pages load their JavaScript from our own static files (a firewalled VM has no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "autotrader_site.openapi.error_responses_document",
    ],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "trading.models.OrderStatus",
        "TradeStatusEnum": "trading.models.TradeStatus",
        "TradingModeEnum": "risk.models.TradingMode",
    },
}

# --- Providers -----------------------------------------------------------------------------
TRADIER_ACCESS_TOKEN = env_str("TRADIER_ACCESS_TOKEN", "")
TRADIER_ENV = env_choice("TRADIER_ENV", "sandbox", ("sandbox", "prod"))
TRADIER_ACCOUNT_ID = env_str("TRADIER_ACCOUNT_ID", "VA00000000")
TRADIER_BASE_URL = env_str(
    "TRADIER_BASE_URL",
    "https://api.tradier.com/v1/" if TRADIER_ENV == "prod" else "https://sandbox.tradier.com/v1/",
)
TRADIER_TIMEOUT_SEC = env_float("TRADIER_TIMEOUT_SEC", 5.0, minimum=0.1)
TRADIER_MAX_RETRIES = env_int("TRADIER_MAX_RETRIES", 4, minimum=0)
# After an order POST that may have reached Tradier (timeout, dropped connection, 5xx) its tag is
# looked up over this many seconds before the order is sent again (a late booking is not doubled).
TRADIER_SUBMIT_SETTLE_SEC = env_float("TRADIER_SUBMIT_SETTLE_SEC", 3.0, minimum=0.0)
# Tradier execution (issue 14): request budget, account event stream, order shapes.
TRADIER_BUDGET_ENABLED = env_bool("TRADIER_BUDGET_ENABLED", True)
TRADIER_BUDGET_TRADING_PER_MIN = env_int("TRADIER_BUDGET_TRADING_PER_MIN", 0, minimum=0)
TRADIER_BUDGET_STANDARD_PER_MIN = env_int("TRADIER_BUDGET_STANDARD_PER_MIN", 0, minimum=0)
TRADIER_BUDGET_MARKET_PER_MIN = env_int("TRADIER_BUDGET_MARKET_PER_MIN", 0, minimum=0)
# Half the minute's limit as the burst: a minute's close asks for a quote, a balance read, an
# entry and a stop per signal at once (benchmarks/bench_fullstack.py); 0.9 kept 3 reads.
TRADIER_BUDGET_RATE_SHARE = env_float("TRADIER_BUDGET_RATE_SHARE", 0.5, minimum=0.1, maximum=0.99)
TRADIER_BUDGET_MAX_WAIT_SEC = env_float("TRADIER_BUDGET_MAX_WAIT_SEC", 30.0, minimum=0.0)
TRADIER_ACCOUNT_WS_URL = env_str(
    "TRADIER_ACCOUNT_WS_URL",
    "wss://ws.tradier.com/v1/accounts/events"
    if TRADIER_ENV == "prod"
    else "wss://sandbox-ws.tradier.com/v1/accounts/events",
)
ACCOUNT_STREAM_ENABLED = env_bool("ACCOUNT_STREAM_ENABLED", True)
ACCOUNT_STREAM_LEASE_SEC = env_float("ACCOUNT_STREAM_LEASE_SEC", 15.0, minimum=1.0)
ACCOUNT_STREAM_HEARTBEAT_TIMEOUT_SEC = env_float(
    "ACCOUNT_STREAM_HEARTBEAT_TIMEOUT_SEC", 150.0, minimum=1.0
)
ACCOUNT_STREAM_BACKOFF_MAX_SEC = env_float("ACCOUNT_STREAM_BACKOFF_MAX_SEC", 30.0, minimum=0.1)
ACCOUNT_STREAM_SESSION_TTL_SEC = env_float("ACCOUNT_STREAM_SESSION_TTL_SEC", 240.0, minimum=1.0)
ORDER_CONFIRM_SEC = env_float("ORDER_CONFIRM_SEC", 2.0, minimum=0.1)
ENTRY_MARKETABLE_OFFSET = env_decimal("ENTRY_MARKETABLE_OFFSET", "0.05", minimum="0")
# 1: once an entry fills, its targets rest at the broker as OCO pairs with the stop
RESTING_TARGETS = env_bool("RESTING_TARGETS", False)
POLYGON_API_KEY = env_str("POLYGON_API_KEY", "")
POLYGON_REST_URL = env_str("POLYGON_REST_URL", "https://api.polygon.io")
POLYGON_WS_URL = env_str("POLYGON_WS_URL", "wss://socket.polygon.io/options")
POLYGON_WS_KEY = env_str("POLYGON_WS_KEY", "") or POLYGON_API_KEY
POLYGON_WS_SYMBOLS = env_symbols("POLYGON_WS_SYMBOLS", "SPX,NDX,SPY,QQQ")
POLYGON_WS_BATCH = env_int("POLYGON_WS_BATCH", 100, minimum=1)
POLYGON_WS_FLUSH_INTERVAL = env_float("POLYGON_WS_FLUSH_INTERVAL", 2.0, minimum=0.01)
POLYGON_WS_BAR_GRACE_SEC = env_float("POLYGON_WS_BAR_GRACE_SEC", 2.0, minimum=0.0)
POLYGON_WS_IDLE_CLOSE_SEC = env_float("POLYGON_WS_IDLE_CLOSE_SEC", 15.0, minimum=0.1)
POLYGON_WS_BACKOFF_MAX_SEC = env_float("POLYGON_WS_BACKOFF_MAX_SEC", 60.0, minimum=0.1)
STREAM_GAP_BACKFILL = env_bool("STREAM_GAP_BACKFILL", True)
STREAM_HEAL_DELAY_SEC = env_float("STREAM_HEAL_DELAY_SEC", 5.0, minimum=0.0)
POLYGON_FLATFILES_ACCESS_KEY = env_str("POLYGON_FLATFILES_ACCESS_KEY", "")
POLYGON_FLATFILES_SECRET_KEY = env_str("POLYGON_FLATFILES_SECRET_KEY", "")
POLYGON_FLATFILES_ENDPOINT = env_str("POLYGON_FLATFILES_ENDPOINT", "https://files.polygon.io")
POLYGON_FLATFILES_BUCKET = env_str("POLYGON_FLATFILES_BUCKET", "flatfiles")
USE_POLYGON_EQUITY = env_bool("USE_POLYGON_EQUITY", False)

# --- Behaviour -----------------------------------------------------------------------------
DRY_RUN = env_bool("DRY_RUN", True)
if not DRY_RUN and not (TRADIER_ACCESS_TOKEN and TRADIER_ACCOUNT_ID):
    raise ImproperlyConfigured(
        "DRY_RUN=0 needs TRADIER_ACCESS_TOKEN and TRADIER_ACCOUNT_ID: live orders need credentials"
    )
SCAN_INTERVAL_SEC = env_int("SCAN_INTERVAL_SEC", 30, minimum=1)
# The scan decides a signal left undecided (its bar task vanished) once it is this old (wall
# time) if its bar closed at most SIGNAL_MAX_DELAY_SEC ago; older ones are marked SIGNAL_STALE.
SIGNAL_RESUME_AFTER_SEC = env_int("SIGNAL_RESUME_AFTER_SEC", 20, minimum=1)
SIGNAL_MAX_DELAY_SEC = env_int("SIGNAL_MAX_DELAY_SEC", 120, minimum=0)
# A sweep or walk-forward still `running` this long after it started is marked failed by beat
# (`analytics.runs_reap`): its chord lost a worker and will never report.
ANALYSIS_RUN_TIMEOUT_MIN = env_int("ANALYSIS_RUN_TIMEOUT_MIN", 240, minimum=1)
# An approved entry still `new` (never sent) whose row nobody touched for this long has lost
# its attempt (a killed worker): the bar task's retry, the scan or reconciliation resume it
# (trading.services.entry_resume). Keep it below CELERY_VISIBILITY_TIMEOUT_SEC, so a
# redelivered bar task finds the lease expired.
ENTRY_RESUME_LEASE_SEC = env_float("ENTRY_RESUME_LEASE_SEC", 10.0, minimum=0.0)
PORT = env_int("PORT", 8080, minimum=1)
BIND_ADDRESS = env_str("BIND_ADDRESS", "127.0.0.1")
ADMIN_USERNAME = env_str("ADMIN_USERNAME", "admin")
ADMIN_PASSWORD = env_str("ADMIN_PASSWORD", "")

# --- Replay / paper session ----------------------------------------------------------------
REPLAY_FILE = env_str("REPLAY_FILE", "")
REPLAY_SPEED = env_float("REPLAY_SPEED", 60.0, minimum=0.0)
REPLAY_SYMBOL = env_str("REPLAY_SYMBOL", "SPY").upper()
REPLAY_SEED = env_int("REPLAY_SEED", 7)
REPLAY_SESSIONS = env_int("REPLAY_SESSIONS", 2, minimum=1)
REPLAY_WARMUP_BARS = env_int("REPLAY_WARMUP_BARS", 60, minimum=0)
# the spec's paper cost settings feed the one cost model (risk.costs): parts in bps of the price
PAPER_SLIPPAGE_BPS = env_float("PAPER_SLIPPAGE_BPS", 0.0, minimum=0.0)
PAPER_SPREAD_BPS = env_float("PAPER_SPREAD_BPS", 0.0, minimum=0.0)
PAPER_STARTING_CASH_USD = env_decimal("PAPER_STARTING_CASH_USD", "100000", minimum="0")
# commissions added to COST_COMMISSION_*; the volume cap is a fill-model option (FillCosts)
PAPER_COMMISSION_PER_SHARE_USD = env_decimal("PAPER_COMMISSION_PER_SHARE_USD", "0", minimum="0")
PAPER_COMMISSION_PER_ORDER_USD = env_decimal("PAPER_COMMISSION_PER_ORDER_USD", "0", minimum="0")
PAPER_FILL_VOLUME_CAP_PCT = env_decimal("PAPER_FILL_VOLUME_CAP_PCT", "0", minimum="0")

# --- Strategy ------------------------------------------------------------------------------
SYMBOLS = env_symbols("SYMBOLS", "TSLA,SPY,QQQ,SPX,NDX")
ORDER_QTY = env_int("ORDER_QTY", 1, minimum=1)
STRATEGY_INTERVAL = env_choice("STRATEGY_INTERVAL", "1m", ("1m", "5m", "1d"))
LOOKBACK_MIN = env_int("LOOKBACK_MIN", 180, minimum=1)
LOOKBACK_DAYS = env_int("LOOKBACK_DAYS", 120, minimum=1)
RVOL_PROFILE_MIN_SESSIONS = env_int("RVOL_PROFILE_MIN_SESSIONS", 5, minimum=1)
VWAP_COOLDOWN_SEC = env_int("VWAP_COOLDOWN_SEC", 900, minimum=0)
VWAP_MIN_RVOL = env_float("VWAP_MIN_RVOL", 1.1, minimum=0.0)
POWER_HOUR_SYMBOLS = env_symbols("POWER_HOUR_SYMBOLS", "SPX,NDX")
POWER_HOUR_START = env_time("POWER_HOUR_START", "15:00")
RISK_PER_TRADE_USD = env_decimal("RISK_PER_TRADE_USD", "100", minimum="0")
RISK_STOP_ATR_MULTIPLIER = env_float("RISK_STOP_ATR_MULTIPLIER", 1.2, minimum=0.0)
TARGET_ONE_ATR_MULTIPLIER = env_float("TARGET_ONE_ATR_MULTIPLIER", 1.0, minimum=0.0)
TARGET_TWO_ATR_MULTIPLIER = env_float("TARGET_TWO_ATR_MULTIPLIER", 2.0, minimum=0.0)
PARTIAL_EXIT_PCT = env_float("PARTIAL_EXIT_PCT", 0.5, minimum=0.0, maximum=1.0)
TRADE_TIMEOUT_MIN = env_int("TRADE_TIMEOUT_MIN", 45, minimum=1)
ENTRY_SPREAD_BPS = env_float("ENTRY_SPREAD_BPS", 10.0, minimum=0.0)
ENTRY_LIMIT_OFFSET_BPS = env_float("ENTRY_LIMIT_OFFSET_BPS", 2.0, minimum=0.0)
ENTRY_LIMIT_TIMEOUT_SEC = env_float("ENTRY_LIMIT_TIMEOUT_SEC", 2.0, minimum=0.0)
ENABLE_OPTIONS_FEEDBACK = env_bool("ENABLE_OPTIONS_FEEDBACK", True)
OPTIONS_MIN_VOLUME = env_int("OPTIONS_MIN_VOLUME", 500, minimum=0)
OPTIONS_MAX_IV = env_float("OPTIONS_MAX_IV", 3.0, minimum=0.0)
OPTIONS_CACHE_TTL_SEC = env_int("OPTIONS_CACHE_TTL_SEC", 300, minimum=0)
SYMBOL_EXECUTION_MAP = env_symbol_map("SYMBOL_EXECUTION_MAP", "SPX:SPY,NDX:QQQ")
SESSION_POLICY_FILE = env_str("SESSION_POLICY_FILE", "")
# Trader-written setups (docs/strategy.md): a folder of *.yaml definitions, re-read on change,
# and a folder of Python plug-ins (plus the "autotrader.setups" entry points).
SETUPS_DIR = env_str("SETUPS_DIR", "")
SETUP_PLUGINS_DIR = env_str("SETUP_PLUGINS_DIR", "")
ETF_SYMBOLS = env_symbols("ETF_SYMBOLS", "SPY,QQQ,IWM,DIA,XLF,XLK,XLE,XLV,GLD,TLT")
ALL_SETUPS = BUILTIN_SETUPS  # strategies/setups/names.py: the one list
ENABLED_SETUPS = [
    s.strip().upper()
    for s in env_str("ENABLED_SETUPS", ",".join(ALL_SETUPS)).split(",")
    if s.strip()
]
for _setup in ENABLED_SETUPS:
    if _setup not in ALL_SETUPS:
        raise ImproperlyConfigured(
            f"ENABLED_SETUPS: {_setup!r} is not one of {', '.join(ALL_SETUPS)}"
        )
# Setup thresholds (DESIGN §4); each one is a setting.
SIGMA_FADE_BAND_K = env_float("SIGMA_FADE_BAND_K", 1.0, minimum=0.0)
SIGMA_FADE_MIN_RVOL = env_float("SIGMA_FADE_MIN_RVOL", 0.9, minimum=0.0)
HOD_FAIL_MIN_ATR = env_float("HOD_FAIL_MIN_ATR", 0.5, minimum=0.0)
ORB_START = env_time("ORB_START", "10:00")
ORB_END = env_time("ORB_END", "14:00")
ORB_BREAKOUT_ATR = env_float("ORB_BREAKOUT_ATR", 0.2, minimum=0.0)
ORB_MIN_RVOL = env_float("ORB_MIN_RVOL", 1.1, minimum=0.0)
ORB_STOP_ATR = env_float("ORB_STOP_ATR", 1.2, minimum=0.0)
ORB_MIN_REGIME = env_float("ORB_MIN_REGIME", 0.0)
TREND_PULLBACK_MAX_ATR = env_float("TREND_PULLBACK_MAX_ATR", 1.5, minimum=0.0)
TREND_PULLBACK_MIN_RVOL = env_float("TREND_PULLBACK_MIN_RVOL", 1.0, minimum=0.0)
TREND_PULLBACK_MIN_REGIME = env_float("TREND_PULLBACK_MIN_REGIME", 0.0)
VWAP_MEAN_MIN_ATR = env_float("VWAP_MEAN_MIN_ATR", 0.5, minimum=0.0)
VWAP_MEAN_MIN_RVOL = env_float("VWAP_MEAN_MIN_RVOL", 1.0, minimum=0.0)
VWAP_MEAN_MIN_REGIME = env_float("VWAP_MEAN_MIN_REGIME", 0.0)
VWAP_MEAN_T2_ATR = env_float("VWAP_MEAN_T2_ATR", 2.0, minimum=0.0)

# --- Risk guardrails -----------------------------------------------------------------------
RISK_MAX_CONCURRENT = env_int("RISK_MAX_CONCURRENT", 3, minimum=0)
RISK_MAX_OPEN_ORDERS = env_int("RISK_MAX_OPEN_ORDERS", 5, minimum=0)
RISK_MAX_POSITIONS_PER_SYMBOL = env_int("RISK_MAX_POSITIONS_PER_SYMBOL", 0, minimum=0)
RISK_MAX_ORDER_NOTIONAL_USD = env_decimal("RISK_MAX_ORDER_NOTIONAL_USD", "0", minimum="0")
RISK_MAX_DAILY_LOSS_USD = env_decimal("RISK_MAX_DAILY_LOSS_USD", "0", minimum="0")
TRADING_WINDOW_START = env_time("TRADING_WINDOW_START", "09:31")
TRADING_WINDOW_END = env_time("TRADING_WINDOW_END", "15:55")
SYMBOL_WHITELIST = env_symbols("SYMBOL_WHITELIST", "")
SYMBOL_BLACKLIST = env_symbols("SYMBOL_BLACKLIST", "")
MIN_CASH_USD = env_decimal("MIN_CASH_USD", "0", minimum="0")
# Money safety (issue 13; reasons for each default in README "Money safety" and
# docs/backtesting.md). Fractions are of account equity; 0 switches a cap off.
RISK_MAX_ORDER_NOTIONAL_PCT = env_decimal("RISK_MAX_ORDER_NOTIONAL_PCT", "0.25", minimum="0")
RISK_MAX_SYMBOL_EXPOSURE_PCT = env_decimal("RISK_MAX_SYMBOL_EXPOSURE_PCT", "0.5", minimum="0")
RISK_MAX_GROSS_EXPOSURE_PCT = env_decimal("RISK_MAX_GROSS_EXPOSURE_PCT", "1.0", minimum="0")
RISK_MAX_DAILY_LOSS_R = env_decimal("RISK_MAX_DAILY_LOSS_R", "3", minimum="0")
RISK_DUPLICATE_EXPOSURE = env_bool("RISK_DUPLICATE_EXPOSURE", True)
RISK_IDEA_WINDOW_SEC = env_int("RISK_IDEA_WINDOW_SEC", 300, minimum=0)
RISK_MIN_STOP_ATR = env_decimal("RISK_MIN_STOP_ATR", "1.0", minimum="0")
RISK_MIN_STOP_TICKS = env_int("RISK_MIN_STOP_TICKS", 5, minimum=0)
RISK_MIN_STOP_SPREADS = env_decimal("RISK_MIN_STOP_SPREADS", "3", minimum="0")
RISK_MIN_T1_COST_MULTIPLE = env_decimal("RISK_MIN_T1_COST_MULTIPLE", "2", minimum="0")
RISK_SLIPPAGE_ALLOWANCE = env_decimal("RISK_SLIPPAGE_ALLOWANCE", "0.05", minimum="0")
# Trading costs per symbol (SymbolOverride rows override spread, slippage and commissions).
COST_SPREAD_USD = env_decimal("COST_SPREAD_USD", "0.01", minimum="0")
COST_SLIPPAGE_USD = env_decimal("COST_SLIPPAGE_USD", "0.005", minimum="0")
COST_COMMISSION_PER_SHARE_USD = env_decimal("COST_COMMISSION_PER_SHARE_USD", "0", minimum="0")
COST_COMMISSION_PER_ORDER_USD = env_decimal("COST_COMMISSION_PER_ORDER_USD", "0", minimum="0")
COST_SEC_FEE_PER_MILLION = env_decimal("COST_SEC_FEE_PER_MILLION", "27.80", minimum="0")
COST_TAF_PER_SHARE_USD = env_decimal("COST_TAF_PER_SHARE_USD", "0.000166", minimum="0")
COST_TAF_MAX_USD = env_decimal("COST_TAF_MAX_USD", "8.30", minimum="0")
COST_TICK_USD = env_decimal("COST_TICK_USD", "0.01", minimum="0.0001")
STOP_PCT = env_float("STOP_PCT", None, minimum=0.0, maximum=1.0)
TP_PCT = env_float("TP_PCT", None, minimum=0.0)
TRAIL_PCT = env_float("TRAIL_PCT", None, minimum=0.0, maximum=1.0)
TRAIL_ACT_PCT = env_float("TRAIL_ACT_PCT", None, minimum=0.0)
STALE_ORDER_MINUTES = env_int("STALE_ORDER_MINUTES", 60, minimum=1)
RECONCILE_INTERVAL_SEC = env_int("RECONCILE_INTERVAL_SEC", 60, minimum=1)
EXIT_MANAGER_INTERVAL_SEC = env_int("EXIT_MANAGER_INTERVAL_SEC", 15, minimum=1)
FLATTEN_BEFORE_CLOSE_MIN = env_int("FLATTEN_BEFORE_CLOSE_MIN", 5, minimum=0)
ACCOUNT_SNAPSHOT_INTERVAL_SEC = env_int("ACCOUNT_SNAPSHOT_INTERVAL_SEC", 300, minimum=1)
# Per-symbol env overrides (QTY_<SYM>, STOP_<SYM>, TP_<SYM>, TRAIL_<SYM>, TRAIL_ACT_<SYM>) are
# read by risk.config from the environment; validated there at start-up.

# --- Legacy database variables of the spec (compose passes them to the db container) --------
DB_HOST = env_str("DB_HOST", "db")
DB_PORT = env_int("DB_PORT", 5432, minimum=1)
DB_NAME = env_str("DB_NAME", "autotrader")
DB_USER = env_str("DB_USER", "autotrader")
DB_PASSWORD = env_str("DB_PASSWORD", "autotrader")

# --- Observability -------------------------------------------------------------------------
METRICS_REQUIRE_AUTH = env_bool("METRICS_REQUIRE_AUTH", False)
# Every process's samples reach /metrics: default <STATE_DIR>/metrics, fresh per run ("off": none).
from autotrader_site.metrics_dir import multiproc_dir_default  # noqa: E402

PROMETHEUS_MULTIPROC_DIR = multiproc_dir_default(STATE_DIR, env_str("PROMETHEUS_MULTIPROC_DIR", ""))
ALERT_WEBHOOK_URL = env_str("ALERT_WEBHOOK_URL", "")
ALERT_MIN_INTERVAL_SEC = env_int("ALERT_MIN_INTERVAL_SEC", 300, minimum=0)
# drift ledger (analytics.drift): alert when a setup's live fills drift from the simulation
DRIFT_ALERT_BPS = env_float("DRIFT_ALERT_BPS", 10.0, minimum=0.0)
DRIFT_ALERT_MISSED_PCT = env_float("DRIFT_ALERT_MISSED_PCT", 20.0, minimum=0.0)
DRIFT_ALERT_MIN_TRADES = env_int("DRIFT_ALERT_MIN_TRADES", 5, minimum=1)
STREAM_STALL_SEC = env_int("STREAM_STALL_SEC", 120, minimum=1)
HEALTH_HEARTBEAT_STALE_SEC = env_int("HEALTH_HEARTBEAT_STALE_SEC", 180, minimum=1)
# tasks on one bar shard queue; the streamer sends one task per shard per minute (a batch), so
# this is about minutes behind (1000 counted single-bar tasks: 4 minutes of 500 symbols, 2 shards)
HEALTH_BAR_BACKLOG_MAX = env_int("HEALTH_BAR_BACKLOG_MAX", 5, minimum=1)
# process heartbeats (beat, streamer, account stream) read by docker/healthcheck.py
HEARTBEAT_DIR = Path(env_str("HEARTBEAT_DIR", "") or str(STATE_DIR / "heartbeats"))
HEARTBEAT_INTERVAL_SEC = env_float("HEARTBEAT_INTERVAL_SEC", 10.0, minimum=0.1)
HEARTBEAT_MAX_AGE_SEC = env_float("HEARTBEAT_MAX_AGE_SEC", 60.0, minimum=1.0)
# a stopping process (SIGTERM) exits hard this long after the signal if its flush hangs
SHUTDOWN_DEADLINE_SEC = env_float("SHUTDOWN_DEADLINE_SEC", 4.0, minimum=0.5)
EVENTS_JOURNAL = Path(env_str("EVENTS_JOURNAL", str(STATE_DIR / "events.jsonl")))

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # one line per task is noise at bar rate; failures still log at ERROR
        "celery.app.trace": {"level": "WARNING"},
    },
}

# Production hardening (DJANGO_SECURE=1 behind TLS).
if env_bool("DJANGO_SECURE", False):
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
