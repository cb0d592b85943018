"""The trade-lifecycle kernel of fast mode: the core's rules for the configurations it
declares (`COVERS`, the defaults included) in exact integer maths.

`run_fast` hands it the merged bars (cents), the kept signals with their levels and what the
risk rules decide from a signal alone (prepared by those rules' own functions in
`fast._signal_rules`: the stop floor, the expected fill, the T1 cost gate, the entry order),
and the per-bar facts the rules read (session flat time, EMA cross-down, New York
dates, the next day's open). It walks the bars in the live processing order, skipping every bar
of a symbol with nothing alive, and applies what the lifecycle core (`trading.core`, the live
and paper path's own rules) does there: fills priced by the cost model (stops and limits
against high/low, conservative order, the pegged limit judged on the open when its timeout ends
inside the bar, then market), each fill's fees, levels re-anchored on the fill, the exit
manager (`trading.core.exits.exit_decide` precedence), marks and the daily-loss kill switch,
and the path-dependent risk rules of `risk.rules.evaluate` (cash and what entries in flight
reserve, caps as fractions of equity, the daily loss limit, one idea per setup and symbol).
Money is whole cents, averages 1e-4 USD, fee rates and fractions scaled to exact integers, so
the trade list (prices, quantities, reasons, fees, net P&L) is identical to the core's; the
equality tests and a differential property test run both on the same data. A configuration it
cannot hold exactly (`fast.kernel_unsupported` names it: trailing stops, brackets,
volume-capped fills, per-symbol overrides, session policies, index->ETF execution, sub-cent
prices or settings beyond the kernel's scale, a regular-session minute without a bar) runs
through the core instead. It knows no setup formula: levels come from
`vector_setups.setup_signals`.

Compiled with numba when it is installed (a pure-Python fallback runs the same code).
"""

from __future__ import annotations

import numpy as np

try:  # optional accelerator
    from numba import njit
except ImportError:  # pragma: no cover - numba missing: same code, interpreted

    def njit(*args, **kwargs):
        def wrap(fn):
            return fn

        return wrap if not args or not callable(args[0]) else args[0]


REASONS = (
    "", "stop", "target_one", "target_two", "timeout", "ema_cross_down", "session_close",
    "kill_switch",
)  # fmt: skip
R_STOP, R_T1, R_T2, R_TIMEOUT, R_CROSS, R_CLOSE, R_KILL = 1, 2, 3, 4, 5, 6, 7
# the risk codes a signal's bits carry (bit b = BIT_CODES[b]), in the order risk.rules.evaluate
# checks them (fast mode lists the failed ones in it, TRADING_HALTED first)
BIT_CODES = (
    "MAX_CONCURRENT",
    "MAX_OPEN_ORDERS",
    "MAX_POSITIONS_PER_SYMBOL",
    "STOP_INVALID",
    "QTY_ZERO",
    "NOTIONAL_EXCEEDS_MAX",
    "NOTIONAL_EXCEEDS_SYMBOL_MAX",
    "GROSS_EXPOSURE_EXCEEDS_MAX",
    "INSUFFICIENT_CASH",
    "DAILY_LOSS_LIMIT",
    "DUPLICATE_EXPOSURE",
    "TARGET_BELOW_COSTS",
    "TRADING_HALTED",
)
(
    BIT_CONCURRENT, BIT_OPEN_ORDERS, BIT_POS_SYMBOL, BIT_STOP_INVALID, BIT_QTY_ZERO,
    BIT_NOTIONAL, BIT_SYMBOL_MAX, BIT_GROSS, BIT_CASH, BIT_DAILY, BIT_DUPLICATE, BIT_T1_COSTS,
    BIT_HALTED,
) = (1 << b for b in range(len(BIT_CODES)))  # fmt: skip
MINUTE_NS = 60_000_000_000
MAX_LEGS = 2  # the T1 partial and the rest: what the covered rules can produce (guarded)

# the kernel's scalar settings, one int64 array (kernel_params builds it by name)
PARAMS = (
    "N_SYMBOLS",
    "N_SETUPS",
    "MAX_CONCURRENT",
    "MAX_OPEN_ORDERS",
    "MAX_POS_SYMBOL",
    "ORDER_CAP_X",  # RISK_MAX_ORDER_NOTIONAL_USD in 1e-4 USD x PCT_DEN (0 = none)
    "ORDER_PCT",  # RISK_MAX_ORDER_NOTIONAL_PCT x PCT_DEN
    "SYMBOL_PCT",  # RISK_MAX_SYMBOL_EXPOSURE_PCT x PCT_DEN
    "GROSS_PCT",  # RISK_MAX_GROSS_EXPOSURE_PCT x PCT_DEN
    "PCT_DEN",
    "MIN_CASH",  # cents
    "CASH0",  # cents
    "ADV",  # half the spread + slippage, rounded up to whole cents (CostModel.market_fill)
    "COMM_PS",  # commission per share, 1e-6 USD
    "COMM_PO",  # commission per order, 1e-6 USD
    "SEC",  # SEC fee per million, 1e-4 USD
    "TAF",  # FINRA TAF per share, 1e-6 USD
    "TAF_MAX",  # its cap per sale, 1e-6 USD
    "LIMIT_TIMEOUT",  # ns
    "TIMEOUT",  # ns
    "PARTIAL_NUM",
    "PARTIAL_DEN",
    "WORST",
    "RISK",  # RISK_PER_TRADE_USD, cents
    "DAILY_LIMIT",  # cents (RiskConfig.max_daily_loss_usd, R folded in; 0 = none)
    "DUPLICATE",
    "IDEA_WINDOW",  # ns
)
(
    P_N_SYMBOLS, P_N_SETUPS, P_MAX_CONCURRENT, P_MAX_OPEN_ORDERS, P_MAX_POS_SYMBOL,
    P_ORDER_CAP_X, P_ORDER_PCT, P_SYMBOL_PCT, P_GROSS_PCT, P_PCT_DEN, P_MIN_CASH, P_CASH0,
    P_ADV, P_COMM_PS, P_COMM_PO, P_SEC, P_TAF, P_TAF_MAX, P_LIMIT_TIMEOUT, P_TIMEOUT,
    P_PARTIAL_NUM, P_PARTIAL_DEN, P_WORST, P_RISK, P_DAILY_LIMIT, P_DUPLICATE, P_IDEA_WINDOW,
) = range(len(PARAMS))  # fmt: skip


def kernel_params(**values) -> np.ndarray:
    """The int64 settings array of lifecycle_kernel from names of PARAMS (lower case);
    unnamed ones are 0, except PCT_DEN (1) and PARTIAL_DEN (2)."""
    out = np.zeros(len(PARAMS), np.int64)
    out[P_PCT_DEN], out[P_PARTIAL_DEN], out[P_PARTIAL_NUM] = 1, 2, 1
    for name, value in values.items():
        out[PARAMS.index(name.upper())] = int(value)
    return out


# What this kernel re-implements of the lifecycle core (`trading.core`) and the risk rules;
# `fast.kernel_unsupported` sends every other configuration to the core, and the
# differential test (tests/analytics/test_kernel_differential.py) holds the two equal.
COVERS = (
    "fills: the cost model's market fill (half the spread + slippage in whole cents: "
    "COST_TICK_USD 0.01, no bps parts), market at open, stop/limit against high/low, "
    "conservative intrabar order, worst case, the pegged limit judged on the open when its "
    "timeout ends inside the bar, then market; levels re-anchored on the fill",
    "fees: commission per share and per order, SEC fee and FINRA TAF (capped) on sales, each "
    "rounded up to the cent, booked in cash and in the trade's net P&L",
    "exits: session close, time stop, T2, T1 partial + break-even, EMA cross-down, on bars "
    "of the trade's symbol: every regular-session minute up to the flat time must have a bar "
    "(else the clock rules and bar-less fills of the core apply: fast.kernel_unsupported)",
    "protection: one stop for the remaining quantity",
    "risk: " + ", ".join(BIT_CODES) + ", market holiday/closed, window, symbol lists; the "
    "stop floor (RISK_MIN_STOP_*), the T1 cost gate, the expected fill and the entry type are "
    "prepared per signal by the risk rules' own functions (fast._signal_rules); the risk "
    "size (risk_size, risk.sizing._risk_qty in integers) and its caps run in the kernel",
    "cash: working entries reserve qty x their worst fill + fees (a market entry: the "
    "cost model's fill of the signal's price; a pegged limit: the larger of its limit and "
    "that market fill), sizing keeps MIN_CASH_USD out, INSUFFICIENT_CASH judges what is left",
    "money safety: order/symbol/gross caps as fractions of equity (cash + positions at their "
    "average price), the daily loss limit (USD or R) as a risk check and as the kill switch "
    "(marks at each close, HALTED and flatten, lifted at the next trading day's open), one "
    "idea per setup and symbol (RISK_DUPLICATE_EXPOSURE, RISK_IDEA_WINDOW_SEC)",
)


@njit(cache=True)
def cooldown_kernel(ts_ns, window_ns):
    """Positions kept by a per-setup cooldown (see fast.cooldown_keep)."""
    keep = np.empty(ts_ns.shape[0], np.int64)
    count = 0
    last = 0
    for i in range(ts_ns.shape[0]):
        if count == 0 or ts_ns[i] - last >= window_ns:
            keep[count] = i
            count += 1
            last = ts_ns[i]
    return keep[:count]


@njit(cache=True)
def _half_up(num, den):
    return (num + den // 2) // den


@njit(cache=True)
def _reanchor(k, fill, s_entry, stop_price, t1, t2):
    """risk.sizing.levels_reanchor in whole cents: the stop and targets of trade k move by
    (fill - the signal's price); exact, so no rounding."""
    shift = fill - s_entry[k]
    stop_price[k] += shift
    if t1[k] >= 0:
        t1[k] += shift
    if t2[k] >= 0:
        t2[k] += shift


@njit(cache=True)
def _protect(k, now, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty, stop_created,
             stop_price):  # fmt: skip
    """trading.services.trade_protect for trade k."""
    if st[k] != 2 or remaining[k] <= 0:
        return
    exiting = x_qty[k] if x_on[k] else 0
    needed = remaining[k] - exiting
    if stop_on[k]:
        if stop_qty[k] == needed and needed > 0:
            stop_px[k] = stop_price[k]
            return
        stop_on[k] = False
    if needed <= 0:
        return
    stop_on[k] = True
    stop_px[k] = stop_price[k]
    stop_qty[k] = needed
    stop_created[k] = now


@njit(cache=True)
def _ceil_div(num, den):
    return -((-num) // den)


@njit(cache=True)
def _fee(sell, q, px, p):
    """risk.costs.CostModel.fill_fee of an order's first fill (= CostModel.fees) in cents:
    commission per share + per order, and on a sale the SEC fee on its value and the FINRA TAF
    (capped), each rounded up to the cent. Rates are exact integers (kernel_params)."""
    if q <= 0:
        return 0
    fee = _ceil_div(p[P_COMM_PS] * q + p[P_COMM_PO], 10_000)
    if sell:
        fee += _ceil_div(px * q * p[P_SEC], 10_000_000_000)
        taf = p[P_TAF] * q
        if p[P_TAF_MAX] > 0 and taf > p[P_TAF_MAX]:
            taf = p[P_TAF_MAX]
        fee += _ceil_div(taf, 10_000)
    return fee


@njit(cache=True)
def _stopout_loss(q, fill, stop, p):
    """risk.sizing.stopout_loss in cents: the stop fills as a market sell, then the round
    trip's fees."""
    if q <= 0:
        return 0
    out = stop - p[P_ADV]
    return q * (fill - out) + _fee(False, q, fill, p) + _fee(True, q, out, p)


@njit(cache=True)
def risk_size(entry, fill, stop, risk_c, p):
    """risk.sizing.position_size before its caps (its `_risk_qty`), in exact integers: the
    largest qty whose stop-out loss, fees rounded as charged, fits the risk budget. Per share
    (1e-12 USD): fill - the stop's market sell + both commissions + the sale's SEC fee and
    TAF unrounded; then step down while the exact loss (`_stopout_loss`) exceeds the budget.
    0 when the stop is not below the entry (or nothing is at risk)."""
    if entry <= 0 or entry - stop <= 0 or risk_c <= 0:
        return 0
    out = stop - p[P_ADV]
    per_share = (
        (fill - out) * 10_000_000_000
        + 2 * p[P_COMM_PS] * 1_000_000
        + out * p[P_SEC]
        + p[P_TAF] * 1_000_000
    )
    if per_share <= 0:
        return 0
    qty = max((risk_c * 10_000_000_000 - 2 * p[P_COMM_PO] * 1_000_000) // per_share, 0)
    while qty > 0 and _stopout_loss(qty, fill, stop, p) > risk_c:
        qty -= 1
    return qty


@njit(cache=True)
def _position(sym, side_buy, q, px, pos_qty, pos_avg):
    """MemoryLedger._position_apply for a long book: the average price in 1e-4 USD, rounded
    half-even (Decimal.quantize(FOUR)) on each buy; 0 when the position is flat."""
    old = pos_qty[sym]
    if side_buy:
        num = pos_avg[sym] * old + px * 100 * q
        total = old + q
        avg = num // total
        rest = num - avg * total
        if 2 * rest > total or (2 * rest == total and avg % 2 == 1):
            avg += 1
        pos_avg[sym] = avg
        pos_qty[sym] = total
    else:
        pos_qty[sym] = old - q
        if pos_qty[sym] == 0:
            pos_avg[sym] = 0


@njit(cache=True)
def _book_sale(k, i, q, px, reason, p, sym, entry_px, remaining, fees, realized, pos_qty,
               pos_avg, legs, leg_g, leg_qty, leg_px, leg_reason):  # fmt: skip
    """One exit leg of trade k filled: q shares sold at px on bar i, its fee booked in the
    trade's fees and realised P&L, the position reduced and the leg recorded. Returns the
    cash it brings (px x q - fee) and the leg's index."""
    fee = _fee(True, q, px, p)
    fees[k] += fee
    realized[k] += (px - entry_px[k]) * q - fee
    _position(sym, False, q, px, pos_qty, pos_avg)
    remaining[k] -= q
    n_leg = legs[k]
    if n_leg >= MAX_LEGS:
        raise IndexError("lifecycle_kernel: more exit legs than MAX_LEGS")
    leg_g[k, n_leg] = i
    leg_qty[k, n_leg] = q
    leg_px[k, n_leg] = px
    leg_reason[k, n_leg] = reason
    legs[k] = n_leg + 1
    return px * q - fee, n_leg


@njit(cache=True)
def _book_entry(k, i, px, p, sym, qty, entry_px, remaining, fees, realized, pos_qty, pos_avg,
                st, entry_g, s_entry, stop_price, t1, t2):  # fmt: skip
    """Trade k's entry filled in full at px on bar i: levels re-anchored on the fill, its fee
    booked, the position opened and the trade open. Returns the cash it costs (px x qty +
    fee)."""
    entry_px[k] = px
    _reanchor(k, px, s_entry, stop_price, t1, t2)
    remaining[k] = qty[k]
    fee = _fee(False, qty[k], px, p)
    fees[k] += fee
    realized[k] -= fee
    _position(sym, True, qty[k], px, pos_qty, pos_avg)
    st[k] = 2
    entry_g[k] = i
    return px * qty[k] + fee


@njit(cache=True)
def lifecycle_kernel(
    g_sym, g_ts, g_o, g_h, g_l, g_c, g_flat, g_cross, g_dayc, g_dayn, g_next_open,
    s_g, s_sym, s_setup, s_entry, s_stop, s_stop_f, s_t1, s_t2, s_pre_ok, s_fill, s_limit,
    s_t1_ok, p,
):  # fmt: skip
    n = g_ts.shape[0]
    m = s_g.shape[0]
    n_symbols = p[P_N_SYMBOLS]
    n_setups = max(p[P_N_SETUPS], 1)
    adv = p[P_ADV]
    worst_case = p[P_WORST] != 0
    limit_timeout_ns = p[P_LIMIT_TIMEOUT]
    partial_num, partial_den = p[P_PARTIAL_NUM], p[P_PARTIAL_DEN]
    min_cash_c = p[P_MIN_CASH]
    dd = p[P_PCT_DEN]
    daily_limit = p[P_DAILY_LIMIT]
    t1 = s_t1.copy()  # the targets of trade k, re-anchored on its fill
    t2 = s_t2.copy()
    # per signal / trade (trade k is born from signal k)
    s_ok = np.zeros(m, np.bool_)
    s_qty = np.zeros(m, np.int64)
    s_bits = np.zeros(m, np.int64)
    st = np.zeros(m, np.int64)  # 0 none, 1 pending, 2 open, 3 closed, 4 cancelled
    qty = np.zeros(m, np.int64)
    remaining = np.zeros(m, np.int64)
    entry_px = np.zeros(m, np.int64)
    entry_g = np.full(m, -1, np.int64)
    stop_price = np.zeros(m, np.int64)
    deadline = np.zeros(m, np.int64)
    partial_done = np.zeros(m, np.bool_)
    exit_reason = np.zeros(m, np.int64)
    e_kind = np.zeros(m, np.int64)  # 0 none, 1 limit, 2 market
    e_px = np.zeros(m, np.int64)
    e_created = np.zeros(m, np.int64)
    stop_on = np.zeros(m, np.bool_)
    stop_px = np.zeros(m, np.int64)
    stop_qty = np.zeros(m, np.int64)
    stop_created = np.zeros(m, np.int64)
    x_on = np.zeros(m, np.bool_)
    x_qty = np.zeros(m, np.int64)
    x_reason = np.zeros(m, np.int64)
    x_created = np.zeros(m, np.int64)
    fees = np.zeros(m, np.int64)  # cents, every fill of the trade
    realized = np.zeros(m, np.int64)  # cents, fees included (the ledger's realized_pnl)
    legs = np.zeros(m, np.int64)
    leg_g = np.full((m, MAX_LEGS), -1, np.int64)
    leg_qty = np.zeros((m, MAX_LEGS), np.int64)
    leg_px = np.zeros((m, MAX_LEGS), np.int64)
    leg_reason = np.zeros((m, MAX_LEGS), np.int64)
    live = np.zeros(m + 1, np.int64)  # ids of pending/open trades, creation order
    n_live = 0
    cash = p[P_CASH0]
    by_symbol = np.zeros(n_symbols, np.int64)
    pos_qty = np.zeros(n_symbols, np.int64)
    pos_avg = np.zeros(n_symbols, np.int64)  # 1e-4 USD
    last = np.zeros(n_symbols, np.int64)  # the last mark (close) per symbol, cents
    n_days = 1
    for j in range(n):
        if g_dayc[j] + 1 > n_days:
            n_days = g_dayc[j] + 1
        if g_dayn[j] + 1 > n_days:
            n_days = g_dayn[j] + 1
    day_realized = np.zeros(n_days, np.int64)  # cents of trades closed that New York date
    last_decided = np.full(n_symbols * n_setups, -(2**62), np.int64)
    halted = False
    resume_at = -1
    events = np.zeros((2 * m + 2, 3), np.int64)  # (1 halt / 2 lift, at ns, day P&L cents)
    n_events = 0
    next_sig = 0
    i = 0
    while i < n:
        if n_live == 0:
            if next_sig >= m:
                break
            i = s_g[next_sig]
        sym = g_sym[i]
        busy = False
        for j in range(n_live):
            if s_sym[live[j]] == sym:
                busy = True
                break
        if not busy and not (next_sig < m and s_g[next_sig] == i):
            i += 1
            continue
        ts = g_ts[i]
        o = g_o[i]
        h = g_h[i]
        lo = g_l[i]
        now = ts + MINUTE_NS
        # 1. fills of this symbol's working orders (trading.core.lifecycle.fills_on_bar)
        j = 0
        while j < n_live:
            k = live[j]
            if s_sym[k] != sym:
                j += 1
                continue
            for _round in range(6):
                ex_el = x_on[k] and x_created[k] <= ts
                em_el = e_kind[k] == 2 and e_created[k] <= ts
                el_el = e_kind[k] == 1 and e_created[k] <= ts
                sp_el = stop_on[k] and stop_created[k] <= ts
                if not (ex_el or em_el or el_el or sp_el):
                    break
                ex_p = o - adv if ex_el else -1  # CostModel.market_fill: whole-cent offsets
                em_p = o + adv if em_el else -1
                sp_p = -1
                if sp_el and lo <= stop_px[k]:
                    sp_p = (lo if worst_case else min(o, stop_px[k])) - adv
                el_p = -1
                # the limit lives ENTRY_LIMIT_TIMEOUT_SEC: ending inside this bar, only the
                # open is a price it saw (trading.core.fills.entry_limit_span)
                reach = o if e_created[k] + limit_timeout_ns < ts + MINUTE_NS else lo
                if el_el and (reach < e_px[k] if worst_case else reach <= e_px[k]):
                    el_p = min(o, e_px[k])
                applied = False
                if ex_el and x_on[k]:  # market exit (priority 0)
                    q = min(x_qty[k], remaining[k])
                    if q > 0:
                        x_on[k] = False
                        got, n_leg = _book_sale(
                            k, i, q, ex_p, x_reason[k], p, sym, entry_px, remaining, fees,
                            realized, pos_qty, pos_avg, legs, leg_g, leg_qty, leg_px, leg_reason,
                        )  # fmt: skip
                        cash += got
                        applied = True
                        if remaining[k] == 0:
                            if exit_reason[k] == 0:
                                exit_reason[k] = x_reason[k]
                            leg_reason[k, n_leg] = exit_reason[k]
                            stop_on[k] = False
                            e_kind[k] = 0
                            st[k] = 3
                            day_realized[g_dayc[i]] += realized[k]
                if em_el and e_kind[k] == 2:  # market entry (priority 0)
                    e_kind[k] = 0
                    cash -= _book_entry(
                        k, i, em_p, p, sym, qty, entry_px, remaining, fees, realized, pos_qty,
                        pos_avg, st, entry_g, s_entry, stop_price, t1, t2,
                    )  # fmt: skip
                    applied = True
                    _protect(k, ts, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                             stop_created, stop_price)  # fmt: skip
                if sp_p >= 0 and stop_on[k] and st[k] == 2:  # stop (priority 1)
                    q = min(stop_qty[k], remaining[k])
                    if q > 0:
                        stop_on[k] = False
                        got, n_leg = _book_sale(
                            k, i, q, sp_p, R_STOP, p, sym, entry_px, remaining, fees,
                            realized, pos_qty, pos_avg, legs, leg_g, leg_qty, leg_px, leg_reason,
                        )  # fmt: skip
                        cash += got
                        applied = True
                        if remaining[k] == 0:
                            if exit_reason[k] == 0:
                                exit_reason[k] = R_STOP
                            leg_reason[k, n_leg] = exit_reason[k]
                            x_on[k] = False
                            st[k] = 3
                            day_realized[g_dayc[i]] += realized[k]
                        else:
                            _protect(k, ts, st, remaining, x_on, x_qty, stop_on, stop_px,
                                     stop_qty, stop_created, stop_price)  # fmt: skip
                if el_p >= 0 and e_kind[k] == 1:  # pegged entry limit (priority 3)
                    e_kind[k] = 0
                    cash -= _book_entry(
                        k, i, el_p, p, sym, qty, entry_px, remaining, fees, realized, pos_qty,
                        pos_avg, st, entry_g, s_entry, stop_price, t1, t2,
                    )  # fmt: skip
                    applied = True
                    _protect(k, ts, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                             stop_created, stop_price)  # fmt: skip
                replaced = False
                timed_out = e_created[k] + limit_timeout_ns < ts + MINUTE_NS
                if el_el and el_p < 0 and e_kind[k] == 1 and timed_out:
                    e_kind[k] = 2  # modified to a market order now
                    e_created[k] = ts
                    replaced = True
                if not applied and not replaced:
                    break
            if st[k] == 3:  # closed: leaves the live list
                by_symbol[s_sym[k]] -= 1
                for jj in range(j, n_live - 1):
                    live[jj] = live[jj + 1]
                n_live -= 1
                continue
            j += 1
        # 2-3. the exit manager for open trades of this symbol (trading.core.exits)
        flat = g_flat[i]
        for j in range(n_live):
            k = live[j]
            if s_sym[k] != sym or st[k] != 2:
                continue
            kind = 0  # 0 none, 1 full, 2 partial, 3 stop move
            reason = 0
            q = 0
            if flat >= 0 and now >= flat:
                kind, reason = 1, R_CLOSE
            elif now >= deadline[k]:
                kind, reason = 1, R_TIMEOUT
            elif t2[k] >= 0 and h >= t2[k]:
                kind, reason = 1, R_T2
            elif t1[k] >= 0 and not partial_done[k] and h >= t1[k]:
                q = (remaining[k] * partial_num) // partial_den
                if partial_num >= partial_den:
                    q = remaining[k]  # PARTIAL_EXIT_PCT >= 1: all of it (risk.sizing)
                elif remaining[k] > 1:
                    q = min(q, remaining[k] - 1)
                else:
                    q = 0
                partial_done[k] = True
                kind = 2 if q >= 1 else 3
                if q >= remaining[k]:
                    kind = 1  # the whole position at T1, as the core's exit_decide
                reason = R_T1
            elif g_cross[i]:
                kind, reason = 1, R_CROSS
            if kind == 1 or kind == 2:
                if remaining[k] <= 0 or x_on[k]:
                    continue  # an exit is already working: never exit twice
                if kind == 1:
                    q = remaining[k]
                else:
                    q = min(q, remaining[k])
                full = q >= remaining[k]
                stop_on[k] = False
                if full:
                    exit_reason[k] = reason
                else:
                    stop_price[k] = max(stop_price[k], entry_px[k])
                x_on[k] = True
                x_qty[k] = q
                x_reason[k] = reason
                x_created[k] = now
                if not full:
                    _protect(k, now, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                             stop_created, stop_price)  # fmt: skip
            elif kind == 3:
                stop_price[k] = max(stop_price[k], entry_px[k])
                _protect(k, now, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                         stop_created, stop_price)  # fmt: skip
            elif not stop_on[k] and not x_on[k]:
                _protect(k, now, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                         stop_created, stop_price)  # fmt: skip
        # 3b. marks and the kill switch where something is held (trading.core.step)
        if busy:
            last[sym] = g_c[i]
            if daily_limit > 0 and not halted:
                pnl = day_realized[g_dayn[i]]
                for j in range(n_live):
                    t = live[j]
                    if st[t] == 2:
                        pnl += realized[t] + (last[s_sym[t]] - entry_px[t]) * remaining[t]
                if pnl <= -daily_limit:  # lifecycle.kill_switch: HALT, then flatten
                    halted = True
                    resume_at = g_next_open[i]
                    events[n_events, 0] = 1
                    events[n_events, 1] = now
                    events[n_events, 2] = pnl
                    n_events += 1
                    j = 0
                    while j < n_live:  # lifecycle.flatten_trades, creation order
                        t = live[j]
                        if e_kind[t] != 0:  # working entry cancelled: nothing filled
                            e_kind[t] = 0
                            if st[t] == 1:
                                st[t] = 4
                                by_symbol[s_sym[t]] -= 1
                                for jj in range(j, n_live - 1):
                                    live[jj] = live[jj + 1]
                                n_live -= 1
                                continue
                        if st[t] == 2 and remaining[t] > 0 and not x_on[t]:
                            stop_on[t] = False
                            exit_reason[t] = R_KILL
                            x_on[t] = True
                            x_qty[t] = remaining[t]
                            x_reason[t] = R_KILL
                            x_created[t] = now
                        j += 1
        # 4. signals of this bar: the halt's lift, risk, then the trade and its entry order
        if next_sig < m and s_g[next_sig] == i and halted and 0 <= resume_at <= now:
            halted = False  # lifecycle.halt_lift, recorded at its resume time
            events[n_events, 0] = 2
            events[n_events, 1] = resume_at
            n_events += 1
            resume_at = -1
        while next_sig < m and s_g[next_sig] == i:
            k = next_sig
            next_sig += 1
            ssym = s_sym[k]
            open_orders = 0
            pending = 0  # what entries in flight reserve (risk.exposure.pending_totals)
            pending_sym = 0
            for j in range(n_live):
                t = live[j]
                if e_kind[t] != 0:
                    open_orders += 1
                    # a pegged limit goes to market after its timeout: the larger of the two
                    worst = max(e_px[t], s_fill[t]) if e_kind[t] == 1 else s_fill[t]
                    amount = qty[t] * worst + _fee(False, qty[t], worst, p)
                    pending += amount
                    if s_sym[t] == ssym:
                        pending_sym += amount
                if x_on[t]:
                    open_orders += 1
            spendable = cash - pending
            # equity and the caps in 1e-4 USD x PCT_DEN (exact: fractions are n / PCT_DEN)
            held_u = pos_qty[ssym] * pos_avg[ssym] + pending_sym * 100
            positions_u = 0
            for sy in range(n_symbols):
                positions_u += pos_qty[sy] * pos_avg[sy]
            gross_u = positions_u + pending * 100
            equity_u = max(cash * 100 + positions_u, 0)
            order_cap = -1  # -1: no cap (risk.rules._caps, _min_positive)
            if p[P_ORDER_CAP_X] > 0:
                order_cap = p[P_ORDER_CAP_X]
            cap_pct = p[P_ORDER_PCT] * equity_u
            if cap_pct > 0 and (order_cap < 0 or cap_pct < order_cap):
                order_cap = cap_pct
            symbol_cap = p[P_SYMBOL_PCT] * equity_u
            has_symbol_cap = symbol_cap > 0
            has_gross_cap = p[P_GROSS_PCT] > 0
            gross_cap = p[P_GROSS_PCT] * equity_u
            has_room = order_cap >= 0
            room = order_cap
            if has_symbol_cap:
                r = symbol_cap - held_u * dd
                room = min(room, r) if has_room else r
                has_room = True
            if has_gross_cap:
                r = gross_cap - gross_u * dd
                room = min(room, r) if has_room else r
                has_room = True
            bits = 0
            if not n_live < p[P_MAX_CONCURRENT]:
                bits |= BIT_CONCURRENT
            if not open_orders < p[P_MAX_OPEN_ORDERS]:
                bits |= BIT_OPEN_ORDERS
            if p[P_MAX_POS_SYMBOL] > 0 and not by_symbol[ssym] < p[P_MAX_POS_SYMBOL]:
                bits |= BIT_POS_SYMBOL
            entry = s_entry[k]
            fill = s_fill[k]
            if not s_stop[k] < entry:
                bits |= BIT_STOP_INVALID
            stop = s_stop_f[k]  # widened to the minimum stop distance (prepared)
            size = risk_size(entry, fill, stop, p[P_RISK], p)
            if size > 0:  # risk.sizing.position_size: the risk size, then the caps
                if has_room:
                    if room > 0:
                        size = min(size, room // (fill * 100 * dd))
                    else:
                        size = 0
                spend = max((spendable - min_cash_c) * 10_000 - p[P_COMM_PO], 0)
                size = min(size, spend // (fill * 10_000 + p[P_COMM_PS]))
                if size < 1:
                    size = 0
            if size < 1:
                bits |= BIT_QTY_ZERO
            notional = fill * size
            if order_cap >= 0 and notional * 100 * dd > order_cap:
                bits |= BIT_NOTIONAL
            if has_symbol_cap and (held_u + notional * 100) * dd > symbol_cap:
                bits |= BIT_SYMBOL_MAX
            if has_gross_cap and (gross_u + notional * 100) * dd > gross_cap:
                bits |= BIT_GROSS
            # risk.rules._cash_checks: the order and its fees must leave MIN_CASH unreserved
            cost = notional + _fee(False, size, fill, p)
            if (size >= 1 or min_cash_c > 0) and spendable - cost < min_cash_c:
                bits |= BIT_CASH
            if daily_limit > 0:  # risk.rules._daily_loss_checks
                day = day_realized[g_dayn[i]]
                open_risk = 0
                for j in range(n_live):
                    t = live[j]
                    if st[t] == 2:
                        day += realized[t] + (last[s_sym[t]] - entry_px[t]) * remaining[t]
                        loss = _stopout_loss(remaining[t], entry_px[t], stop_price[t], p)
                    else:
                        loss = _stopout_loss(qty[t], s_fill[t], stop_price[t], p)
                    open_risk += max(loss, 0)
                worst_day = day - open_risk - _stopout_loss(size, fill, stop, p)
                if not (day > -daily_limit and worst_day >= -daily_limit):
                    bits |= BIT_DAILY
            if p[P_DUPLICATE] != 0:  # one idea per setup and execution symbol
                slot = ssym * n_setups + s_setup[k]
                same = last_decided[slot] >= now - p[P_IDEA_WINDOW]
                for j in range(n_live):
                    t = live[j]
                    if s_sym[t] == ssym and s_setup[t] == s_setup[k]:
                        same = True
                if same:
                    bits |= BIT_DUPLICATE
            if not s_t1_ok[k]:
                bits |= BIT_T1_COSTS
            if halted:
                bits |= BIT_HALTED
            s_bits[k] = bits
            s_qty[k] = size
            if bits != 0 or not s_pre_ok[k]:
                continue
            s_ok[k] = True
            st[k] = 1
            qty[k] = size
            stop_price[k] = stop
            deadline[k] = now + p[P_TIMEOUT]
            if s_limit[k] >= 0:
                e_kind[k] = 1
                e_px[k] = s_limit[k]
            else:
                e_kind[k] = 2
            e_created[k] = now
            live[n_live] = k
            n_live += 1
            by_symbol[ssym] += 1
            last_decided[ssym * n_setups + s_setup[k]] = now
        i += 1
    return (s_ok, s_qty, s_bits, st, qty, entry_px, entry_g, legs, leg_g, leg_qty, leg_px,
            leg_reason, fees, realized, events[:n_events])  # fmt: skip
