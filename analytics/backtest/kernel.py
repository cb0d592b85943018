"""The trade-lifecycle kernel of fast mode: a subset of the core's rules in integer cents.

`run_fast` hands it the merged bars (cents), the kept signals with their levels, and the
per-bar facts the rules read (session flat time, EMA cross-down); it walks the bars in the live
processing order, skipping every bar of a symbol with nothing alive, and applies exactly what
the lifecycle core (`trading.core`, the live and paper path's own rules) does for them:
fills (frictionless: market at the open; stops and limits against high/low, conservative
order; the pegged limit judged on the open when its timeout ends inside the bar, then
market), levels re-anchored on the fill, the exit manager (`trading.core.exits.exit_decide`
precedence) and the risk limits (`risk.rules.evaluate` for the rules a backtest can hit,
the cash that entries in flight reserve and MIN_CASH_USD included).
Prices that are whole cents make every step exact integer maths, so the trade list is
identical; the equality tests and a differential property test run both on the same data.
Configurations the kernel does not cover (`COVERS` says what it does; any trading cost,
trailing stops, per-symbol overrides, brackets, volume-capped fills, the kill switch, session
policies, index->ETF execution, sub-cent prices, a regular-session minute without a bar) run
through the core instead. It
knows no setup formula: levels come from `vector_setups.setup_signals`.

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


REASONS = ("", "stop", "target_one", "target_two", "timeout", "ema_cross_down", "session_close")
R_STOP, R_T1, R_T2, R_TIMEOUT, R_CROSS, R_CLOSE = 1, 2, 3, 4, 5, 6
BIT_CODES = (
    "MAX_CONCURRENT",
    "MAX_OPEN_ORDERS",
    "MAX_POSITIONS_PER_SYMBOL",
    "STOP_INVALID",
    "QTY_ZERO",
    "NOTIONAL_EXCEEDS_MAX",
    "INSUFFICIENT_CASH",
)
MINUTE_NS = 60_000_000_000
MAX_LEGS = 2  # the T1 partial and the rest: what the covered rules can produce (guarded)

# What this kernel re-implements of the lifecycle core (`trading.core`) and the risk rules;
# `fast.kernel_unsupported` sends every other configuration to the core, and the
# differential test (tests/analytics/test_kernel_differential.py) holds the two equal.
COVERS = (
    "fills: frictionless (the cost model all zero), market at open, stop/limit against "
    "high/low, conservative intrabar order, worst case, the pegged limit judged on the open "
    "when its timeout ends inside the bar, then market; levels re-anchored on the fill",
    "exits: session close, time stop, T2, T1 partial + break-even, EMA cross-down, on bars "
    "of the trade's symbol: every regular-session minute up to the flat time must have a bar "
    "(else the clock rules and bar-less fills of the core apply: fast.kernel_unsupported)",
    "protection: one stop for the remaining quantity",
    "risk: " + ", ".join(BIT_CODES) + ", market holiday/closed, window, symbol lists",
    "cash: working entries reserve qty x their worst fill (a market entry: the signal's "
    "price; a pegged limit: the larger of its limit and that market fallback), "
    "sizing keeps MIN_CASH_USD out, INSUFFICIENT_CASH judges what is left",
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
def lifecycle_kernel(
    g_sym, g_ts, g_o, g_h, g_l, g_flat, g_cross,
    s_g, s_sym, s_entry, s_stop, s_t1, s_t2, s_pre_ok,
    n_symbols, max_concurrent, max_open_orders, max_pos_symbol, risk_c, notional_cap_c,
    min_cash_c, cash0_c, use_limit, offset2, adverse2, limit_timeout_ns, timeout_ns,
    partial_num, partial_den, worst_case,
):  # fmt: skip
    n = g_ts.shape[0]
    m = s_g.shape[0]
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
    legs = np.zeros(m, np.int64)
    leg_g = np.full((m, MAX_LEGS), -1, np.int64)
    leg_qty = np.zeros((m, MAX_LEGS), np.int64)
    leg_px = np.zeros((m, MAX_LEGS), np.int64)
    leg_reason = np.zeros((m, MAX_LEGS), np.int64)
    live = np.zeros(m + 1, np.int64)  # ids of pending/open trades, creation order
    n_live = 0
    cash = cash0_c
    by_symbol = np.zeros(n_symbols, np.int64)
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
        # 1. fills of this symbol's working orders (trading.pipeline.paper_bar_process)
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
                ex_p = _half_up(o * (20000 - adverse2), 20000) if ex_el else -1
                em_p = _half_up(o * (20000 + adverse2), 20000) if em_el else -1
                sp_p = -1
                if sp_el and lo <= stop_px[k]:
                    base = lo if worst_case else min(o, stop_px[k])
                    sp_p = _half_up(base * (20000 - adverse2), 20000)
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
                        cash += ex_p * q
                        remaining[k] -= q
                        n_leg = legs[k]
                        if n_leg >= MAX_LEGS:
                            raise IndexError("lifecycle_kernel: more exit legs than MAX_LEGS")
                        leg_g[k, n_leg] = i
                        leg_qty[k, n_leg] = q
                        leg_px[k, n_leg] = ex_p
                        leg_reason[k, n_leg] = x_reason[k]
                        legs[k] = n_leg + 1
                        applied = True
                        if remaining[k] == 0:
                            if exit_reason[k] == 0:
                                exit_reason[k] = x_reason[k]
                            leg_reason[k, n_leg] = exit_reason[k]
                            stop_on[k] = False
                            e_kind[k] = 0
                            st[k] = 3
                if em_el and e_kind[k] == 2:  # market entry (priority 0)
                    e_kind[k] = 0
                    entry_px[k] = em_p
                    _reanchor(k, em_p, s_entry, stop_price, t1, t2)
                    remaining[k] = qty[k]
                    cash -= em_p * qty[k]
                    st[k] = 2
                    entry_g[k] = i
                    applied = True
                    _protect(k, ts, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                             stop_created, stop_price)  # fmt: skip
                if sp_p >= 0 and stop_on[k] and st[k] == 2:  # stop (priority 1)
                    q = min(stop_qty[k], remaining[k])
                    if q > 0:
                        stop_on[k] = False
                        cash += sp_p * q
                        remaining[k] -= q
                        n_leg = legs[k]
                        if n_leg >= MAX_LEGS:
                            raise IndexError("lifecycle_kernel: more exit legs than MAX_LEGS")
                        leg_g[k, n_leg] = i
                        leg_qty[k, n_leg] = q
                        leg_px[k, n_leg] = sp_p
                        leg_reason[k, n_leg] = R_STOP
                        legs[k] = n_leg + 1
                        applied = True
                        if remaining[k] == 0:
                            if exit_reason[k] == 0:
                                exit_reason[k] = R_STOP
                            leg_reason[k, n_leg] = exit_reason[k]
                            x_on[k] = False
                            st[k] = 3
                        else:
                            _protect(k, ts, st, remaining, x_on, x_qty, stop_on, stop_px,
                                     stop_qty, stop_created, stop_price)  # fmt: skip
                if el_p >= 0 and e_kind[k] == 1:  # pegged entry limit (priority 3)
                    e_kind[k] = 0
                    entry_px[k] = el_p
                    _reanchor(k, el_p, s_entry, stop_price, t1, t2)
                    remaining[k] = qty[k]
                    cash -= el_p * qty[k]
                    st[k] = 2
                    entry_g[k] = i
                    applied = True
                    _protect(k, ts, st, remaining, x_on, x_qty, stop_on, stop_px, stop_qty,
                             stop_created, stop_price)  # fmt: skip
                replaced = False
                timed_out = e_created[k] + limit_timeout_ns < ts + MINUTE_NS
                if el_el and el_p < 0 and e_kind[k] == 1 and timed_out:
                    e_kind[k] = 2  # cancelled and replaced by a market order now
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
        # 2-3. the exit manager for open trades of this symbol (trading.exits)
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
        # 4. signals of this bar: risk, then the trade and its entry order
        while next_sig < m and s_g[next_sig] == i:
            k = next_sig
            next_sig += 1
            open_orders = 0
            pending = 0  # cash entries in flight reserve at their worst price (core.exposure)
            for j in range(n_live):
                t = live[j]
                if e_kind[t] != 0:
                    open_orders += 1
                    # a pegged limit goes to market after its timeout: the larger of the two
                    worst = max(e_px[t], s_entry[t]) if e_kind[t] == 1 else s_entry[t]
                    pending += qty[t] * worst
                if x_on[t]:
                    open_orders += 1
            spendable = cash - pending
            bits = 0
            if not n_live < max_concurrent:
                bits |= 1
            if not open_orders < max_open_orders:
                bits |= 2
            if max_pos_symbol > 0 and not by_symbol[s_sym[k]] < max_pos_symbol:
                bits |= 4
            entry = s_entry[k]
            stop = s_stop[k]
            if not stop < entry:
                bits |= 8
            size = 0
            dist = entry - stop
            if entry > 0 and dist > 0 and risk_c > 0:
                size = risk_c // dist
                if notional_cap_c > 0:
                    cap = notional_cap_c // entry
                    if cap < size:
                        size = cap
                cap = max(spendable - min_cash_c, 0) // entry  # buying power net of MIN_CASH
                if cap < size:
                    size = cap
                if size < 1:
                    size = 0
            if size < 1:
                bits |= 16
            if notional_cap_c > 0 and entry * size > notional_cap_c:
                bits |= 32
            # risk.rules._cash_checks: the order must leave MIN_CASH of the unreserved cash
            if (size >= 1 or min_cash_c > 0) and spendable - entry * size < min_cash_c:
                bits |= 64
            s_bits[k] = bits
            s_qty[k] = size
            if bits != 0 or not s_pre_ok[k]:
                continue
            s_ok[k] = True
            st[k] = 1
            qty[k] = size
            stop_price[k] = stop
            deadline[k] = now + timeout_ns
            if use_limit:
                e_kind[k] = 1
                e_px[k] = _half_up(entry * (20000 - offset2), 20000)
            else:
                e_kind[k] = 2
            e_created[k] = now
            live[n_live] = k
            n_live += 1
            by_symbol[s_sym[k]] += 1
        i += 1
    return (s_ok, s_qty, s_bits, st, qty, entry_px, entry_g, legs, leg_g, leg_qty, leg_px,
            leg_reason)  # fmt: skip
