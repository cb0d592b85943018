"""Writes and decisions of the risk stage: the trading state (audited), the decision lock that
makes limits hold across concurrent workers, and risk evaluation against gathered exposure.

`risk` never imports `trading`: the exposure snapshot comes from a provider that the trading
app registers at start-up (`exposure_provider_set`), or from the caller.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction

from autotrader_site.clock import clock
from autotrader_site.metrics import TRADING_HALTED
from risk import rules
from risk.config import RiskConfig
from risk.models import TradingMode, TradingState, TradingStateChange
from risk.selectors import DEFAULT_ACCOUNT, symbol_params_get, trading_state_get
from risk.types import Decision, Exposure, Intent

log = logging.getLogger(__name__)

_exposure_provider: Callable[[], Exposure] | None = None


def exposure_provider_set(provider: Callable[[], Exposure] | None) -> None:
    """Register the function that gathers the current exposure (the trading app does this)."""
    global _exposure_provider
    _exposure_provider = provider


def exposure_get() -> Exposure:
    if _exposure_provider is None:
        return Exposure(trading_state=trading_state_get().state)
    return _exposure_provider()


def _lock_key(account: str) -> int:
    return zlib.crc32(f"autotrader-risk-{account}".encode()) & 0x7FFFFFFF


@contextmanager
def decision_lock(*, account: str = DEFAULT_ACCOUNT) -> Iterator[None]:
    """One risk decision at a time per account, across processes and hosts.

    Opens a transaction and takes a PostgreSQL transaction-level advisory lock, released at
    commit; the caller gathers exposure, decides and records its order INSIDE the block, so
    the next decider sees it. On SQLite (embedded, single process) the transaction alone.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(account)])
        yield


def risk_evaluate(
    *,
    intent: Intent,
    exposure: Exposure | None = None,
    config: RiskConfig | None = None,
    now: datetime | None = None,
) -> Decision:
    """Evaluate an entry intent against every rule (exposure gathered when not given)."""
    config = config or RiskConfig.from_settings()
    exposure = exposure if exposure is not None else exposure_get()
    params = symbol_params_get(symbol=intent.symbol, config=config)
    return rules.evaluate(intent, exposure, config, now or clock.now(), params)


def risk_preview(
    *,
    symbol: str,
    qty: int | None = None,
    price: Decimal | float | str | None = None,
    stop_price: Decimal | float | str | None = None,
    now: datetime | None = None,
) -> dict:
    """What the rules would say about buying `qty` `symbol` now (price: given, else the last
    stored bar's close; qty: given, else sized from `stop_price`, else ORDER_QTY). Read-only."""
    from marketdata.selectors import bars_as_data

    symbol = symbol.upper()
    if price is None:
        last = bars_as_data(symbol=symbol, limit=1)
        if not last:
            return {
                "symbol": symbol,
                "approved": False,
                "qty": qty or 0,
                "price": None,
                "notional": None,
                "checks": [
                    {
                        "stage": "risk",
                        "code": "NO_PRICE",
                        "passed": False,
                        "message": f"no stored bar for {symbol}; pass price=",
                    }
                ],
                "reasons": ["NO_PRICE"],
            }
        price = last[-1].close
    price = Decimal(str(price))
    if qty is None and stop_price is None:
        qty = RiskConfig.from_settings().default_qty  # nothing to size from: ORDER_QTY
    intent = Intent(
        symbol=symbol,
        entry_price=price,
        stop_price=None if stop_price is None else Decimal(str(stop_price)),
        qty=qty,
    )
    decision = risk_evaluate(intent=intent, now=now)
    return {
        "symbol": symbol,
        "approved": decision.approved,
        "qty": decision.qty,
        "price": str(price),
        "notional": str(decision.notional.quantize(Decimal("0.01"))),
        "checks": decision.checks_as_dicts(),
        "reasons": decision.reasons,
    }


@transaction.atomic
def trading_state_set(
    *,
    state: str,
    reason: str = "",
    user=None,
    actor: str = "",
    account: str = DEFAULT_ACCOUNT,
    resume_at: datetime | None = None,
    resume_state: str = "",
) -> TradingState:
    """Move the account to ACTIVE / REDUCING / HALTED; every change is audited with who and
    why. Setting the current state again records nothing. `resume_at`/`resume_state`: a
    halt that lifts on its own (only the daily loss limit's); any other change clears them,
    so an operator's halt never lifts by itself."""
    state = str(state).upper()
    if state not in TradingMode.values:
        raise ValueError(f"state must be one of {', '.join(TradingMode.values)}")
    if resume_at is not None and (state != TradingMode.HALTED or not resume_state):
        raise ValueError("only a halt lifts on its own, and into a named state")
    row, _ = TradingState.objects.select_for_update().get_or_create(account=account)
    TRADING_HALTED.set(1 if state == TradingMode.HALTED else 0)
    if (row.state, row.reason, row.resume_at, row.resume_state) == (
        state,
        reason,
        resume_at,
        resume_state if resume_at else "",
    ):
        return row
    previous = row.state
    row.state = state
    row.reason = reason[:255]
    row.changed_by = user if getattr(user, "pk", None) else None
    row.resume_at = resume_at
    row.resume_state = resume_state if resume_at else ""
    row.save()
    TradingStateChange.objects.create(
        account=account,
        from_state=previous,
        to_state=state,
        reason=reason[:255],
        changed_by=row.changed_by,
        actor=(actor or getattr(user, "username", "") or "system")[:64],
    )
    log.warning("trading state %s -> %s: %s", previous, state, reason)
    return row


@transaction.atomic
def trading_state_resume(
    *, due: datetime, reason: str, account: str = DEFAULT_ACCOUNT
) -> TradingState | None:
    """Lift a self-lifting halt whose `resume_at` is at or before `due` into its
    `resume_state` (audited, actor "kill-switch"). Locked and re-checked: an operator's
    change meanwhile (which cleared resume_at) wins. Returns the row when it lifted."""
    row = TradingState.objects.select_for_update().filter(account=account).first()
    if (
        row is None
        or row.state != TradingMode.HALTED
        or row.resume_at is None
        or row.resume_at > due
    ):
        return None
    return trading_state_set(
        state=row.resume_state or TradingMode.ACTIVE,
        reason=reason,
        actor="kill-switch",
        account=account,
    )
