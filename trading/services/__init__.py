"""Writes of the trading stage, by job: `orders` (create, send, cancel, sync, apply broker
reports), `trades` (fills, protection, exits, entries through the lifecycle core),
`operations` (cancel-all, flatten, snapshots, heartbeats), `brackets` (operator brackets and
dry runs). Reads live in `trading.selectors`; the rules in `trading.core`."""

from trading.core.errors import ForceNotAllowed, TradingError
from trading.orm_ledger import children_close
from trading.services.brackets import bracket_place, bracket_preview, order_dryrun
from trading.services.entry_resume import entries_resume, entry_resume
from trading.services.operations import (
    account_snapshot_take,
    heartbeat_record,
    orders_cancel_all,
    orders_cancel_stale,
    positions_flatten,
)
from trading.services.orders import (
    order_apply_remote,
    order_cancel,
    order_create,
    order_dead,
    order_submit,
    order_sync,
)
from trading.services.trades import (
    bar_mark,
    entries_escalate,
    entry_limit_replace,
    fill_apply,
    stop_move,
    trade_exit,
    trade_protect,
)

__all__ = [
    "ForceNotAllowed",
    "TradingError",
    "account_snapshot_take",
    "bar_mark",
    "bracket_place",
    "bracket_preview",
    "children_close",
    "entries_escalate",
    "entries_resume",
    "entry_resume",
    "entry_limit_replace",
    "fill_apply",
    "heartbeat_record",
    "order_apply_remote",
    "order_cancel",
    "order_create",
    "order_dead",
    "order_dryrun",
    "order_submit",
    "order_sync",
    "orders_cancel_all",
    "orders_cancel_stale",
    "positions_flatten",
    "stop_move",
    "trade_exit",
    "trade_protect",
]
