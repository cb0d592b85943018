"""The backtest report: one self-contained HTML page (PNG charts embedded) plus the PNGs.

Charts: the equity curve with its drawdown underneath; per setup, cumulative P&L lines and a
bar chart of total P&L / win rate / trades; the distribution of trade P&L. Tables: statistics
overall and per setup, P&L per session with the session's trend/balance label, the trade list.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics.backtest.result import BacktestResult  # noqa: E402
from analytics.statistics import drawdown_curve  # noqa: E402

STAT_COLUMNS = (
    ("trades", "trades", "{}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("expectancy", "expectancy $", "{:,.2f}"),
    ("profit_factor", "profit factor", "{:.2f}"),
    ("total_pnl", "total P&L $", "{:,.2f}"),
    ("max_drawdown", "max drawdown $", "{:,.2f}"),
    ("sharpe_daily", "Sharpe (daily)", "{:.2f}"),
)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def equity_figure(result: BacktestResult, starting_cash: float) -> bytes:
    closed = result.closed_trades()
    times = [pd.Timestamp(t.exit_ts) for t in closed]
    pnl = np.cumsum([t.pnl for t in closed]) if closed else np.zeros(0)
    equity = starting_cash + np.concatenate(([0.0], pnl))
    start = pd.Timestamp(closed[0].entry_ts) if closed else pd.Timestamp.now(tz="UTC")
    x = [start, *times]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    top.step(x, equity, where="post", color="#1f6feb", linewidth=1.4)
    top.axhline(starting_cash, color="#888", linewidth=0.8, linestyle="--")
    top.set_ylabel("equity $")
    top.set_title(f"Equity ({result.mode} mode, {len(closed)} trades, {', '.join(result.symbols)})")
    top.grid(alpha=0.3)
    dd = drawdown_curve(equity)
    bottom.fill_between(x, dd, 0, step="post", color="#d73a49", alpha=0.45)
    bottom.set_ylabel("drawdown $")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def setups_figure(result: BacktestResult, stats: dict) -> bytes:
    setups = [s for s in stats if s != "ALL"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    if not setups:
        for ax in axes:
            ax.text(0.5, 0.5, "no trades", ha="center", va="center")
            ax.set_axis_off()
        return _png(fig)
    totals = [stats[s]["total_pnl"] for s in setups]
    colors = ["#2da44e" if v >= 0 else "#d73a49" for v in totals]
    axes[0].barh(setups, totals, color=colors)
    axes[0].set_title("total P&L $ by setup")
    axes[0].axvline(0, color="#555", linewidth=0.8)
    axes[1].barh(setups, [(stats[s]["win_rate"] or 0) * 100 for s in setups], color="#8250df")
    axes[1].set_title("win rate %")
    axes[1].set_xlim(0, 100)
    axes[2].barh(setups, [stats[s]["trades"] for s in setups], color="#bf8700")
    axes[2].set_title("trades")
    for ax in axes[1:]:
        ax.set_yticklabels([])
    for ax in axes:
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _png(fig)


def setup_curves_figure(result: BacktestResult) -> bytes:
    closed = result.closed_trades()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    for setup in sorted({t.setup for t in closed}):
        trades = [t for t in closed if t.setup == setup]
        left.step(
            [pd.Timestamp(t.exit_ts) for t in trades],
            np.cumsum([t.pnl for t in trades]),
            where="post",
            label=setup,
        )
    left.set_title("cumulative P&L $ per setup")
    left.axhline(0, color="#555", linewidth=0.8)
    if closed:
        left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.hist([t.pnl for t in closed] or [0.0], bins=30, color="#1f6feb", alpha=0.8)
    right.set_title("trade P&L distribution $")
    right.axvline(0, color="#555", linewidth=0.8)
    right.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return _png(fig)


def _fmt(value, pattern: str) -> str:
    if value is None:
        return "–"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return html.escape(str(value))


def _stats_table(stats: dict) -> str:
    head = "".join(f"<th>{label}</th>" for _, label, _ in STAT_COLUMNS)
    rows = []
    for setup, row in stats.items():
        cells = "".join(f"<td>{_fmt(row.get(key), fmt)}</td>" for key, _, fmt in STAT_COLUMNS)
        rows.append(f"<tr><th>{html.escape(setup)}</th>{cells}</tr>")
    return f"<table><tr><th>setup</th>{head}</tr>{''.join(rows)}</table>"


def _sessions_table(result: BacktestResult) -> str:
    per_day: dict = {}
    for trade in result.closed_trades():
        day = trade.session_date()
        count, pnl = per_day.get(day, (0, 0.0))
        per_day[day] = (count + 1, pnl + trade.pnl)
    rows = []
    for day in result.sessions:
        count, pnl = per_day.get(day, (0, 0.0))
        label = result.session_labels.get(day, "–")
        rows.append(
            f"<tr><td>{day}</td><td>{html.escape(label)}</td><td>{count}</td>"
            f"<td class='{'pos' if pnl >= 0 else 'neg'}'>{pnl:,.2f}</td></tr>"
        )
    by_label: dict[str, list[float]] = {}
    for day in result.sessions:
        label = result.session_labels.get(day, "unlabelled")
        by_label.setdefault(label, []).append(per_day.get(day, (0, 0.0))[1])
    summary = "".join(
        f"<li>{html.escape(label)}: {len(values)} sessions, P&L {sum(values):,.2f}</li>"
        for label, values in sorted(by_label.items())
    )
    return (
        f"<ul>{summary}</ul><table><tr><th>session</th><th>label</th><th>trades</th>"
        f"<th>P&L $</th></tr>{''.join(rows)}</table>"
    )


def _trades_table(result: BacktestResult, limit: int = 500) -> str:
    rows = []
    trades = result.closed_trades()
    for t in trades[:limit]:
        d = t.as_dict()
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    d["setup"],
                    d["symbol"],
                    d["entry_ts"][:16].replace("T", " "),
                    f"{d['entry_price']:.2f}",
                    d["qty"],
                    d["exit_ts"][:16].replace("T", " "),
                    f"{d['exit_price']:.2f}",
                    d["exit_reason"],
                )
            )
            + f"<td class='{'pos' if t.pnl >= 0 else 'neg'}'>{t.pnl:,.2f}</td></tr>"
        )
    more = f"<p>… {len(trades) - limit} more in the JSON output</p>" if len(trades) > limit else ""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "setup",
            "symbol",
            "entry (UTC)",
            "entry $",
            "qty",
            "exit (UTC)",
            "exit $",
            "exit reason",
            "P&L $",
        )  # fmt: skip
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def report_write(result: BacktestResult, directory: str | Path, *, starting_cash: float) -> Path:
    """Write `index.html` (self-contained) and the chart PNGs into `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    stats = result.stats()
    charts = {
        "equity_drawdown.png": equity_figure(result, starting_cash),
        "setups.png": setups_figure(result, stats),
        "setup_curves.png": setup_curves_figure(result),
    }
    for name, data in charts.items():
        (out / name).write_bytes(data)
    params = html.escape(", ".join(f"{k}={v}" for k, v in sorted(result.params.items())))
    first = result.sessions[0] if result.sessions else "–"
    last = result.sessions[-1] if result.sessions else "–"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Backtest {html.escape(", ".join(result.symbols))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.pos {{ color: #1a7f37; }} .neg {{ color: #cf222e; }}
img {{ max-width: 100%; display: block; margin: 8px 0 16px; }}
</style></head><body>
<h1>Backtest: {html.escape(", ".join(result.symbols))}</h1>
<p>{len(result.sessions)} sessions ({first} → {last}), {result.bars:,} bars,
mode <b>{result.mode}</b>, {len(result.signals)} signals fired,
{len(result.closed_trades())} trades.
Fills: decided at the bar close, market orders at the next bar's open ± slippage, stops and
limits against the bar's high/low (stops first within a bar).</p>
<p><small>{params}</small></p>
<h2>Equity and drawdown</h2>{_img(charts["equity_drawdown.png"], "equity and drawdown")}
<h2>Statistics</h2>{_stats_table(stats)}
<h2>Setups</h2>{_img(charts["setups.png"], "per-setup P&L, win rate, trades")}
{_img(charts["setup_curves.png"], "cumulative P&L per setup and P&L distribution")}
<h2>Sessions</h2>{_sessions_table(result)}
<h2>Trades</h2>{_trades_table(result)}
</body></html>"""
    index = out / "index.html"
    index.write_text(page)
    return index
