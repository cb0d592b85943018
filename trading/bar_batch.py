"""A shard's share of a minute (`trading.on_bars_closed`) handled as one batch.

Most bars of a universe are quiet: no setup fires, nothing of the symbol is working or open, so
the whole step is the feature update and the bar's claim. Bar by bar that was three round
trips each (catch-up read, claim insert, live-state read). Here the batch reads its claims
once, the live state of all its symbols once per book, the stored bars for the catch-up once
(`strategies.feature_store.features_many`), and claims its quiet bars in ONE insert, already
`done`. Every other bar — a setup fired, the symbol has orders or trades, the bar was claimed
by an attempt that did not finish — goes through `pipeline.process_bar_close` as before, in
batch order, and so does every later bar of its symbol in the batch; after a full step the
live state of the batch's remaining symbols is read again (one query) before the next quiet
bar. A bar whose claim is `done` is skipped: a redelivered batch does not step its fills and
exits again.

Quiet claims are written before any full step runs, so when a full step at bar k fails and the
task retries bars k.., every bar before k is claimed (and skipped by the retry's own read).
"""

from __future__ import annotations

import logging
from datetime import datetime

from marketdata.types import BarData
from risk.config import RiskConfig
from strategies.config import StrategyConfig
from strategies.evaluation import setups_decide
from strategies.feature_store import features_many
from strategies.features.sessions import session_minute
from strategies.models import Book, ClaimState
from strategies.selectors import claim_states
from strategies.services import claims_insert_done, snapshot_features
from trading import pipeline
from trading.brokers import broker_get
from trading.core import lifecycle
from trading.paper_book import paper_book_active, paper_book_broker

log = logging.getLogger(__name__)


class BarStopped(Exception):
    """A retryable error at `bars[index]`: the bars before it are done or claimed."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"bar {index}: {cause!r}")
        self.index = index
        self.cause = cause


def bars_close(bars: list[BarData], *, retryable: tuple = (), config=None) -> int:
    """Handle `bars` in order (see the module's docstring); returns the signals handled.
    An error in `retryable` raises BarStopped with the bar it stopped at; any other error of
    one bar is logged and the batch goes on."""
    config = config or RiskConfig.from_settings()
    cfg = StrategyConfig.from_settings()
    broker = broker_get()
    keys = [(bar.symbol.upper(), bar.ts) for bar in bars]
    ledgers = [pipeline._ledger(broker)]
    if paper_book_active():
        ledgers.append(pipeline._ledger(paper_book_broker(), book=Book.PAPER))
    try:
        claims = claim_states(keys)
        for ledger in ledgers:
            ledger.live_state_prime([symbol for symbol, _ in keys])
        todo = [
            k for k in keys if claims.get(k) != ClaimState.DONE and session_minute(k[1]) is not None
        ]
        rows = features_many(todo, cfg)
    except retryable as exc:
        raise BarStopped(0, exc) from exc
    except Exception:  # one bad bar must not cost the batch: every bar on its own instead
        log.exception("bar batch read failed; its %d bars are stepped one by one", len(bars))
        claims, rows, ledgers = {}, {}, []

    handled = quiet = 0
    reread = False  # a full step wrote: the live state read before it may be out of date
    pending: list[tuple[int, tuple[str, datetime], dict]] = []  # quiet claims not yet written
    full: set[str] = set()  # symbols stepped in full in this batch: their later bars too

    def flush() -> None:
        if not pending:
            return
        try:
            claimed = claims_insert_done([(s, ts, f) for _, (s, ts), f in pending])
        except retryable as exc:
            raise BarStopped(pending[0][0], exc) from exc
        raced = len(pending) - len(claimed)
        if raced:  # claimed meanwhile by another worker, which handles them
            log.info("%d quiet bars of the batch were claimed by another attempt", raced)
        pending.clear()

    for i, bar in enumerate(bars):
        key = keys[i]
        state = claims.get(key)
        if state == ClaimState.DONE:
            continue  # handled to its end by an earlier delivery
        symbol = key[0]
        if reread and state is None and symbol not in full and ledgers:
            # e.g. a signal on SPX opened an SPY entry: the rest of the batch must see it
            try:
                for ledger in ledgers:
                    ledger.live_state_prime([s for s, _ in keys[i:]])
            except retryable as exc:
                raise BarStopped(i, exc) from exc
            reread = False
        if (
            state is None
            and symbol not in full
            and ledgers
            and all(ledger.is_idle(symbol) for ledger in ledgers)
        ):
            try:
                kind, features = _quiet_claim(key, rows, cfg)
            except Exception:
                log.exception("bar-close of %s %s failed; the batch goes on", *key)
                continue
            if kind != "full":
                quiet += 1
                if kind == "claim":
                    pending.append((i, key, features))
                continue
        full.add(symbol)
        flush()
        reread = True
        try:
            handled += len(pipeline.process_bar_close(bar=bar, config=config, row=rows.get(key)))
        except retryable as exc:
            raise BarStopped(i, exc) from exc
        except Exception:
            log.exception("bar-close task failed for %r; the batch goes on", f"{symbol} {bar.ts}")
    flush()
    if quiet and broker.name != "paper":  # the clock rule each live step applies, once
        latest = max(bar.ts for bar in bars) + pipeline.BAR
        try:  # the exit manager's beat applies it too: a failure here is not retried
            lifecycle.escalate_due(ledgers[0], now=latest, config=config)
        except Exception:
            log.exception("entry-limit escalation after the bar batch failed")
    return handled


def _quiet_claim(key, rows: dict, cfg: StrategyConfig) -> tuple[str, dict | None]:
    """What a bar whose symbol has nothing alive needs: ("claim", its snapshot features) when
    no setup fires; ("skip", None) when it is not evaluated at all (pre/post-market, not
    stored: as `bar_evaluate`); ("full", None) when a setup fires (its full step)."""
    if key not in rows:
        return "skip", None
    row = rows[key]
    if row is None:
        log.warning("evaluate_bar: no stored bar %s %s; skipped", *key)
        return "skip", None
    decisions = setups_decide(row, symbol=key[0], cfg=cfg)
    if any(d.fired for d in decisions):
        return "full", None
    return "claim", snapshot_features(row, decisions)
