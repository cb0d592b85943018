"""Writes of analytics: session labels, stored backtests and sweeps."""

from __future__ import annotations

from datetime import date, datetime

from django.db import transaction

from analytics.models import BacktestRun, SweepRun
from marketdata.models import SessionLabel


@transaction.atomic
def session_labels_store(*, symbol: str, labels: dict[date, dict]) -> int:
    """Upsert one SessionLabel per (symbol, session); a re-run replaces, never doubles."""
    rows = [
        SessionLabel(symbol=symbol, session_date=day, label=item["label"], stats=item["stats"])
        for day, item in labels.items()
    ]
    if rows:
        SessionLabel.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["symbol", "session_date"],
            update_fields=["label", "stats"],
        )
    return len(rows)


@transaction.atomic
def backtest_run_create(
    *,
    name: str,
    params: dict,
    stats: dict,
    trades: list[dict],
    sweep: SweepRun | None = None,
) -> BacktestRun:
    return BacktestRun.objects.create(
        name=name[:128], params=params, stats=stats, trades=trades, sweep=sweep
    )


@transaction.atomic
def sweep_run_create(*, grid: dict, base: dict) -> SweepRun:
    return SweepRun.objects.create(grid={"axes": grid, "base": base}, status="running")


@transaction.atomic
def sweep_run_finish(
    *, sweep_id: int, summary: dict, status: str = "done", finished_at: datetime
) -> SweepRun:
    sweep = SweepRun.objects.select_for_update().get(pk=sweep_id)
    sweep.summary = summary
    sweep.status = status
    sweep.finished_at = finished_at
    sweep.save(update_fields=["summary", "status", "finished_at"])
    return sweep


def runs_reap(*, now: datetime, timeout_min: int) -> list[str]:
    """Mark failed every sweep and walk-forward still `running` `timeout_min` minutes after it
    started: a chord whose worker died never calls its summary, and the run would say
    `running` for ever. A summary that lands later still replaces the failure (it is real).
    Returns the runs marked, as "sweep #1" / "walk-forward #2"."""
    from datetime import timedelta

    from analytics.models import WalkForwardRun

    before = now - timedelta(minutes=timeout_min)
    marked = []
    for model, kind in ((SweepRun, "sweep"), (WalkForwardRun, "walk-forward")):
        with transaction.atomic():
            for run in model.objects.select_for_update().filter(
                status="running", created_at__lt=before
            ):
                run.status = "failed"
                run.finished_at = now
                run.summary = {
                    **(run.summary or {}),
                    "error": f"no result {timeout_min} min after it started "
                    "(ANALYSIS_RUN_TIMEOUT_MIN): a worker died or the chord was lost",
                }
                run.save(update_fields=["status", "finished_at", "summary"])
                marked.append(f"{kind} #{run.pk}")
    return marked


def session_labels_update(
    *,
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    data: str = "db",
) -> dict[str, dict[date, dict]]:
    """The daily labelling job: label each regular session of each symbol (stored bars, or a
    CSV file for one symbol) and store the labels. Returns symbol → {date: {label, stats}}."""
    from datetime import UTC, time, timedelta

    from django.conf import settings

    from analytics.bars import bars_frame_from_csv, bars_frame_from_db
    from analytics.session_labels import label_sessions

    chosen = symbols or list(settings.SYMBOLS)
    lo = datetime.combine(start, time(0), tzinfo=UTC) if start else None
    hi = datetime.combine(end + timedelta(days=1), time(12), tzinfo=UTC) if end else None
    out: dict[str, dict[date, dict]] = {}
    for symbol in chosen:
        if data == "db":
            frame = bars_frame_from_db(symbol=symbol, start=lo, end=hi)
        else:
            frame = bars_frame_from_csv(data)
        labels = label_sessions(frame)
        labels = {
            d: v
            for d, v in labels.items()
            if (start is None or d >= start) and (end is None or d <= end)
        }
        session_labels_store(symbol=symbol, labels=labels)
        out[symbol] = labels
    return out


@transaction.atomic
def walkforward_run_create(*, plan: dict, folds: list[dict], candidates: list[dict]):
    from analytics.models import WalkForwardRun

    return WalkForwardRun.objects.create(
        plan=plan, folds=folds, candidates=candidates, status="running"
    )


@transaction.atomic
def walkforward_run_finish(*, run_id: int, summary: dict, status: str, finished_at: datetime):
    from analytics.models import WalkForwardRun

    run = WalkForwardRun.objects.select_for_update().get(pk=run_id)
    run.summary = summary
    run.status = status
    run.finished_at = finished_at
    run.save(update_fields=["summary", "status", "finished_at"])
    return run
