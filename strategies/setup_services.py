"""Writes and previews of trader-written setups (admin and API share these).

Every change is audited (`SetupAudit`). A setup trades live only while the version approved by a
user with the trading permission (`SetupControl.live_version`) is its current version: a new or
edited definition has a new content hash and is back on paper until someone approves it again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from django.db import transaction

from autotrader_site.clock import clock
from strategies.config import StrategyConfig
from strategies.dsl.ast import SetupError
from strategies.models import SetupAudit, SetupControl, UserSetup
from strategies.setups.definition import parse_definition
from strategies.setups.registry import setup_get, setups_all, setups_changed


def setup_validate(text: str) -> dict:
    """{valid, name, version, error, line, column} of a definition text (nothing stored)."""
    try:
        d = parse_definition(text, cfg=StrategyConfig.from_settings())
    except SetupError as exc:
        return {"valid": False, "name": None, "version": None, "error": exc.message,
                "line": exc.line, "column": exc.column}  # fmt: skip
    return {"valid": True, "name": d.name, "version": d.version, "error": None, "line": None,
            "column": None}  # fmt: skip


def _audit(actor: str, setup: str, version: str, action: str, **detail) -> None:
    SetupAudit.objects.create(
        actor=actor or "?", setup=setup, version=version, action=action, detail=detail
    )


@transaction.atomic
def user_setup_save(*, text: str, actor: str, enabled: bool | None = None) -> UserSetup:
    """Create or edit the admin/API definition named in `text`; raises SetupError when invalid
    or when the name belongs to a built-in, file or plug-in setup. Paper mode until approved."""
    d = parse_definition(text, cfg=StrategyConfig.from_settings())
    existing = setup_get(d.name)
    if existing is not None and existing.kind != "admin":
        raise SetupError(f"{d.name} is already defined in {existing.source}")
    row = UserSetup.objects.select_for_update().filter(name=d.name).first()
    action = "created" if row is None else "edited"
    if row is None:
        row = UserSetup(name=d.name)
    previous = row.version
    row.text, row.version, row.updated_by = text, d.version, actor
    if enabled is not None:
        row.enabled = enabled
    row.save()
    if previous != d.version:
        _audit(actor, d.name, d.version, action, previous_version=previous, mode="paper")
    transaction.on_commit(setups_changed)
    setups_changed()
    return row


@transaction.atomic
def setup_enable(*, name: str, enabled: bool, actor: str) -> SetupControl:
    entry = setups_all().get(name)
    if entry is None:
        raise SetupError(f"unknown setup {name}")
    control, _ = SetupControl.objects.select_for_update().get_or_create(name=name)
    control.enabled = enabled
    control.save(update_fields=["enabled"])
    if entry.kind == "admin":
        UserSetup.objects.filter(name=name).update(enabled=enabled)
    _audit(actor, name, entry.version, "enabled" if enabled else "disabled")
    transaction.on_commit(setups_changed)
    setups_changed()
    return control


@transaction.atomic
def setup_go_live(*, name: str, version: str, user) -> SetupControl:
    """Approve `version` of setup `name` for live trading. The caller checks the trading
    permission; `version` must be the current one (what the approver looked at)."""
    entry = setups_all().get(name)
    if entry is None:
        raise SetupError(f"unknown setup {name}")
    if version != entry.version:
        raise SetupError(f"{name} is at version {entry.version}, not {version}")
    control, _ = SetupControl.objects.select_for_update().get_or_create(name=name)
    control.live_version = version
    control.approved_by = user.get_username()
    control.approved_at = clock.now()
    control.save()
    _audit(user.get_username(), name, version, "live")
    transaction.on_commit(setups_changed)
    setups_changed()
    return control


@transaction.atomic
def setup_to_paper(*, name: str, actor: str) -> SetupControl:
    entry = setups_all().get(name)
    if entry is None:
        raise SetupError(f"unknown setup {name}")
    control, _ = SetupControl.objects.select_for_update().get_or_create(name=name)
    control.live_version = ""
    control.save(update_fields=["live_version"])
    _audit(actor, name, entry.version, "paper")
    transaction.on_commit(setups_changed)
    setups_changed()
    return control


def _chart_time(ts: datetime) -> int:
    """UNIX seconds of the bar start as New York wall time: the dashboard chart's time axis."""
    from strategies.features.sessions import ET

    offset = ts.astimezone(ET).utcoffset()
    return int(ts.timestamp() + (offset.total_seconds() if offset else 0))


def setup_preview(
    *, name: str, symbol: str, start: datetime | None = None, end: datetime | None = None
) -> list[dict]:
    """Where setup `name` would have fired on the stored bars of `symbol` (its per-bar path,
    cooldown included): [{bar_ts, time, version, entry, stop, target_one, target_two}]. The
    dashboard draws these as chart markers (`time` on its New York wall-time axis)."""
    from marketdata.selectors import bars_as_data
    from strategies.scan import decisions_scan

    if setups_all().get(name) is None:
        raise SetupError(f"unknown setup {name}")
    cfg = replace(StrategyConfig.from_settings(), enabled_setups=(name,))
    bars = bars_as_data(symbol=symbol.upper(), start=start, end=end)
    out = []
    for row, decisions in decisions_scan(symbol=symbol.upper(), bars=bars, cfg=cfg):
        for d in decisions:
            if d.fired:
                out.append(
                    {
                        "bar_ts": row["ts"],
                        "time": _chart_time(row["ts"]),
                        "version": d.version,
                        "entry": d.entry,
                        "stop": d.stop,
                        "target_one": d.target_one,
                        "target_two": d.target_two,
                    }
                )
    return out
