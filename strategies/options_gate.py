"""Options gating from the Polygon options snapshot (`/v3/snapshot/options/{underlying}`).

The chain of the execution symbol is summarised (total day volume, total open interest, median
implied volatility) and cached in the Django cache for OPTIONS_CACHE_TTL_SEC, so every worker
shares one fetch. A signal is options_blocked when the chain trades fewer than OPTIONS_MIN_VOLUME
contracts or its median IV exceeds OPTIONS_MAX_IV. Without POLYGON_API_KEY, or when the fetch
fails, the gate PASSES with a check saying the feedback is unavailable - visible, never silent.
The fetcher is injectable (`options_fetcher_set`) so tests feed real-format fixture payloads.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache

from strategies.config import StrategyConfig

log = logging.getLogger(__name__)

SnapshotFetcher = Callable[[str], list[dict]]
_fetcher: SnapshotFetcher | None = None
_FAILURE_TTL_SEC = 30
STAGE = "options"


def options_fetcher_set(fetcher: SnapshotFetcher | None) -> None:
    """Use `fetcher(underlying) -> list of contract dicts` instead of the Polygon client."""
    global _fetcher
    _fetcher = fetcher


def _default_fetcher() -> SnapshotFetcher | None:
    if _fetcher is not None:
        return _fetcher
    if not settings.POLYGON_API_KEY:
        return None
    try:
        from marketdata.clients.polygon_rest import options_snapshot
    except ImportError:
        return None
    return options_snapshot


def _contract_volume(row: dict) -> float:
    if row.get("volume") is not None:
        return float(row["volume"])
    return float((row.get("day") or {}).get("volume") or 0)


def options_summary(contracts: list[dict]) -> dict:
    """Chain totals from snapshot results (flat dicts or Polygon's raw `results` items)."""
    ivs = [
        float(c["implied_volatility"]) for c in contracts if c.get("implied_volatility") is not None
    ]
    return {
        "contracts": len(contracts),
        "volume": sum(_contract_volume(c) for c in contracts),
        "open_interest": sum(float(c.get("open_interest") or 0) for c in contracts),
        "median_iv": statistics.median(ivs) if ivs else None,
    }


def _check(code: str, passed: bool, message: str) -> dict:
    return {"stage": STAGE, "code": code, "passed": passed, "message": message}


def options_summary_get(underlying: str, cfg: StrategyConfig) -> dict | None:
    """Cached chain summary, or None (with the reason in 'error') when unavailable."""
    key = f"strategies:options:{underlying}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    fetch = _default_fetcher()
    if fetch is None:
        return {"error": "no Polygon API key configured"}
    try:
        summary = options_summary(fetch(underlying))
    except Exception as exc:  # provider outage must not stop evaluation
        log.warning("options snapshot for %s failed: %s", underlying, exc)
        summary = {"error": f"snapshot request failed: {exc.__class__.__name__}"}
        cache.set(key, summary, timeout=min(_FAILURE_TTL_SEC, cfg.options_cache_ttl_sec or 1))
        return summary
    cache.set(key, summary, timeout=cfg.options_cache_ttl_sec or None)
    return summary


def options_checks(underlying: str, cfg: StrategyConfig) -> list[dict]:
    """Checks of the options gate for a signal trading `underlying`."""
    if not cfg.options_enabled:
        return [_check("OPTIONS_DISABLED", True, "options feedback disabled")]
    summary = options_summary_get(underlying, cfg)
    if "error" in summary:
        return [
            _check(
                "OPTIONS_UNAVAILABLE",
                True,
                f"options feedback unavailable ({summary['error']}); not gating",
            )
        ]
    checks = [
        _check(
            "OPTIONS_VOLUME",
            summary["volume"] >= cfg.options_min_volume,
            f"{underlying} options volume {summary['volume']:.0f}"
            f" (min {cfg.options_min_volume}) over {summary['contracts']} contracts,"
            f" open interest {summary['open_interest']:.0f}",
        )
    ]
    iv = summary["median_iv"]
    if iv is None:
        checks.append(_check("OPTIONS_IV", True, "no implied volatility in the snapshot"))
    else:
        checks.append(
            _check(
                "OPTIONS_IV",
                iv <= cfg.options_max_iv,
                f"{underlying} median IV {iv:.3f} (max {cfg.options_max_iv})",
            )
        )
    return checks
