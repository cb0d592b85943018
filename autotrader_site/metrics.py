"""Every Prometheus metric of the service, defined once.

Names follow the spec exactly. In multi-process deployments (gunicorn/uvicorn workers, Celery)
set PROMETHEUS_MULTIPROC_DIR so each process writes its samples there and `/metrics` aggregates
them (prometheus_client multiprocess mode).
"""

from prometheus_client import Counter, Gauge, Histogram

SIGNAL_TOTAL = Counter(
    "autotrader_signal_total",
    "Signals by setup and outcome (generated, options_blocked, risk_blocked, approved, dry_run,"
    " submitted)",
    ["setup", "outcome"],
)
TRADIER_REQUEST_TOTAL = Counter(
    "autotrader_tradier_request_total", "Tradier HTTP requests", ["endpoint", "status"]
)
POLYGON_REQUEST_TOTAL = Counter(
    "autotrader_polygon_request_total", "Polygon HTTP requests", ["endpoint", "status"]
)
ACTIVE_TRADES = Gauge(
    "autotrader_active_trades", "Managed trades currently open", multiprocess_mode="livemax"
)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BAR_TO_DECISION_SECONDS = Histogram(
    "autotrader_bar_to_decision_seconds",
    "From bar close event to risk decision",
    buckets=_LATENCY_BUCKETS,
)
DECISION_TO_ACK_SECONDS = Histogram(
    "autotrader_decision_to_ack_seconds",
    "From risk decision to broker acknowledgement",
    buckets=_LATENCY_BUCKETS,
)
STREAM_MESSAGES_TOTAL = Counter(
    "autotrader_stream_messages_total",
    "Websocket messages by cluster and kind",
    ["cluster", "kind"],
)
STREAM_RECONNECTS_TOTAL = Counter(
    "autotrader_stream_reconnects_total", "Websocket reconnects by cluster", ["cluster"]
)
STREAM_LAG_SECONDS = Gauge(
    "autotrader_stream_lag_seconds",
    "Age of the newest event when received",
    ["cluster"],
    multiprocess_mode="livemax",
)
BARS_WRITTEN_TOTAL = Counter(
    "autotrader_bars_written_total", "1-minute bars stored by source", ["source"]
)
ORDERS_TOTAL = Counter("autotrader_orders_total", "Order state transitions", ["broker", "status"])
RECONCILE_TOTAL = Counter("autotrader_reconcile_total", "Reconciliation runs by result", ["result"])
RECONCILE_LAST_SUCCESS = Gauge(
    "autotrader_reconcile_last_success_timestamp",
    "Unix time of the last successful reconciliation",
    multiprocess_mode="max",
)
TRADING_HALTED = Gauge(
    "autotrader_trading_halted", "1 when the trading state is HALTED", multiprocess_mode="max"
)

# --- Tradier request budget and account event stream (issue 14) ---------------------------------
TRADIER_BUDGET_GRANTED_TOTAL = Counter(
    "autotrader_tradier_budget_granted_total",
    "Tokens granted by the shared Tradier request budget",
    ["endpoint_class", "priority"],
)
TRADIER_BUDGET_WAIT_SECONDS = Histogram(
    "autotrader_tradier_budget_wait_seconds",
    "Time a Tradier request waited for a budget token",
    ["endpoint_class"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRADIER_BUDGET_AVAILABLE = Gauge(
    "autotrader_tradier_budget_available",
    "Requests left in Tradier's current interval (X-Ratelimit-Available)",
    ["endpoint_class"],
    multiprocess_mode="livemin",
)
ACCOUNT_STREAM_EVENTS_TOTAL = Counter(
    "autotrader_account_stream_events_total",
    "Tradier account stream messages by kind (order, heartbeat, unknown, unmatched, error)",
    ["kind"],
)
ACCOUNT_STREAM_CONNECTED = Gauge(
    "autotrader_account_stream_connected",
    "1 while this process owns the account stream lease and its websocket is open",
    multiprocess_mode="livemax",
)
