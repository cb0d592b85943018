"""Session policies: time-of-day playbooks from SESSION_POLICY_FILE (YAML).

Format (see docs/session_policies.example.yaml): `timezone` (default America/New_York) and
`sessions: {NAME: {time_window: [HH:MM, HH:MM], allow_setups, ban_setups, rvol_min,
ema20_slope_min, ema20_slope_max, time_stop_sec, max_trades, etf_only}}`. A session is active
when the bar's CLOSE time t satisfies start <= t < end in the file's timezone. Every field is
enforced:
- allow_setups (when non-empty the setup must be listed) and ban_setups;
- rvol_min, ema20_slope_min / ema20_slope_max against the features `rvol` and `ema_20_slope`
  (the slope is a relative change over 5 bars, 0.001 = 0.1 %);
- time_stop_sec: copied into the signal's features; the exit manager times the trade out;
- max_trades: signals of the session date inside the window that reached dry_run/submitted,
  counted over all symbols (a playbook limit on the book);
- etf_only: the execution symbol must be in ETF_SYMBOLS.
With a policy file loaded, a signal outside every window is policy_blocked (POLICY_NO_SESSION).
A bad file raises ImproperlyConfigured naming the file, the session and the field; the app
validates it at start-up (StrategiesConfig.ready()).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

STAGE = "policy"
FIELDS = {
    "time_window",
    "allow_setups",
    "ban_setups",
    "rvol_min",
    "ema20_slope_min",
    "ema20_slope_max",
    "time_stop_sec",
    "max_trades",
    "etf_only",
}


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    name: str
    start: time
    end: time
    allow_setups: frozenset[str] = frozenset()
    ban_setups: frozenset[str] = frozenset()
    rvol_min: float | None = None
    ema20_slope_min: float | None = None
    ema20_slope_max: float | None = None
    time_stop_sec: int | None = None
    max_trades: int | None = None
    etf_only: bool = False

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class PolicyBook:
    path: str
    timezone: ZoneInfo
    sessions: tuple[SessionPolicy, ...]

    def active(self, at: datetime) -> SessionPolicy | None:
        """The session whose window holds decision time `at` (tz-aware)."""
        t = at.astimezone(self.timezone).time()
        for policy in self.sessions:
            if policy.contains(t):
                return policy
        return None

    def window_utc(self, policy: SessionPolicy, day: date) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, policy.start, self.timezone),
            datetime.combine(day, policy.end, self.timezone),
        )


# --- loading and validation --------------------------------------------------------------------
def _fail(path, session: str | None, field: str | None, problem: str):
    where = f"{path}"
    if session is not None:
        where += f": session {session!r}"
    if field is not None:
        where += f": field {field!r}"
    raise ImproperlyConfigured(f"SESSION_POLICY_FILE {where}: {problem}")


_HHMM = re.compile(r"(\d{1,2}):(\d{2})")


def _time(path, name, field, value) -> time:
    match = _HHMM.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        _fail(path, name, field, f"{value!r} is not a time HH:MM")
    return time(int(match[1]), int(match[2]))


def _number(path, name, field, value, *, minimum=None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, name, field, f"{value!r} is not a number")
    if value != value:
        _fail(path, name, field, "must be a finite number")
    if minimum is not None and value < minimum:
        _fail(path, name, field, f"{value} must be >= {minimum}")
    return float(value)


def _integer(path, name, field, value, *, minimum) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, name, field, f"{value!r} is not an integer")
    if value < minimum:
        _fail(path, name, field, f"{value} must be >= {minimum}")
    return value


def _setups(path, name, field, value) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        _fail(path, name, field, f"{value!r} is not a list of setup names")
    out = set()
    for item in value:
        setup = str(item).strip().upper()
        if setup not in settings.ALL_SETUPS:
            _fail(path, name, field, f"{item!r} is not one of {', '.join(settings.ALL_SETUPS)}")
        out.add(setup)
    return frozenset(out)


def _session(path, name: str, spec) -> SessionPolicy:
    if not isinstance(spec, dict):
        _fail(path, name, None, "must be a mapping of fields")
    unknown = set(spec) - FIELDS
    if unknown:
        field = sorted(map(str, unknown))[0]
        _fail(path, name, field, f"unknown field (allowed: {', '.join(sorted(FIELDS))})")
    window = spec.get("time_window")
    if not isinstance(window, list) or len(window) != 2:
        _fail(path, name, "time_window", f'{window!r} must be ["HH:MM", "HH:MM"]')
    start = _time(path, name, "time_window", window[0])
    end = _time(path, name, "time_window", window[1])
    if not start < end:
        _fail(path, name, "time_window", f"start {start:%H:%M} must be before end {end:%H:%M}")
    kwargs: dict = {}
    for field in ("rvol_min",):
        if spec.get(field) is not None:
            kwargs[field] = _number(path, name, field, spec[field], minimum=0)
    for field in ("ema20_slope_min", "ema20_slope_max"):
        if spec.get(field) is not None:
            kwargs[field] = _number(path, name, field, spec[field])
    if (
        kwargs.get("ema20_slope_min") is not None
        and kwargs.get("ema20_slope_max") is not None
        and kwargs["ema20_slope_min"] > kwargs["ema20_slope_max"]
    ):
        _fail(path, name, "ema20_slope_min", "is greater than ema20_slope_max")
    if spec.get("time_stop_sec") is not None:
        kwargs["time_stop_sec"] = _integer(
            path, name, "time_stop_sec", spec["time_stop_sec"], minimum=1
        )
    if spec.get("max_trades") is not None:
        kwargs["max_trades"] = _integer(path, name, "max_trades", spec["max_trades"], minimum=0)
    etf_only = spec.get("etf_only", False)
    if not isinstance(etf_only, bool):
        _fail(path, name, "etf_only", f"{etf_only!r} is not true/false")
    allow = _setups(path, name, "allow_setups", spec.get("allow_setups"))
    ban = _setups(path, name, "ban_setups", spec.get("ban_setups"))
    if allow & ban:
        _fail(path, name, "ban_setups", f"{sorted(allow & ban)} are both allowed and banned")
    return SessionPolicy(
        name=name,
        start=start,
        end=end,
        allow_setups=allow,
        ban_setups=ban,
        etf_only=etf_only,
        **kwargs,
    )


def policies_load(path: str | os.PathLike) -> PolicyBook:
    """Parse and validate a policy file; raises ImproperlyConfigured naming file/session/field."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        _fail(path, None, None, f"cannot be read ({exc.strerror})")
    except yaml.YAMLError as exc:
        _fail(path, None, None, f"is not valid YAML ({exc})")
    if not isinstance(data, dict):
        _fail(path, None, None, "must be a mapping with 'sessions'")
    unknown = set(data) - {"timezone", "sessions"}
    if unknown:
        _fail(path, None, sorted(map(str, unknown))[0], "unknown top-level key")
    tz_name = data.get("timezone") or "America/New_York"
    try:
        tz = ZoneInfo(str(tz_name))
    except (ZoneInfoNotFoundError, ValueError):
        _fail(path, None, "timezone", f"{tz_name!r} is not a known time zone")
    sessions = data.get("sessions")
    if not isinstance(sessions, dict) or not sessions:
        _fail(path, None, "sessions", "must be a non-empty mapping of session names")
    parsed = tuple(_session(path, str(name), spec) for name, spec in sessions.items())
    ordered = sorted(parsed, key=lambda p: p.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.end:
            _fail(path, b.name, "time_window", f"overlaps session {a.name!r}")
    return PolicyBook(path=path, timezone=tz, sessions=tuple(ordered))


_cache: dict[str, tuple[float, PolicyBook]] = {}


def policy_book() -> PolicyBook | None:
    """The configured book (re-read when the file changes), or None without SESSION_POLICY_FILE."""
    path = settings.SESSION_POLICY_FILE
    if not path:
        return None
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = -1.0
    hit = _cache.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    book = policies_load(path)
    _cache[path] = (mtime, book)
    return book


def active_session_policy(at: datetime) -> SessionPolicy | None:
    """The policy active at decision time `at` (for risk's trading window), or None."""
    book = policy_book()
    return book.active(at) if book is not None else None


# --- enforcement (pure) ------------------------------------------------------------------------
def _check(code: str, passed: bool, message: str) -> dict:
    return {"stage": STAGE, "code": code, "passed": passed, "message": message}


def policy_checks(
    policy: SessionPolicy,
    *,
    setup: str,
    features: dict,
    execution_symbol: str,
    etf_symbols: frozenset[str],
    trades_in_window: int,
) -> list[dict]:
    """Every check of `policy` for a fired setup, passed or not."""
    p = policy
    checks = [_check("POLICY_SESSION", True, f"session {p.name} {p.start:%H:%M}-{p.end:%H:%M}")]
    if p.allow_setups:
        checks.append(
            _check(
                "POLICY_SETUP_NOT_ALLOWED",
                setup in p.allow_setups,
                f"{setup} {'in' if setup in p.allow_setups else 'not in'} allow_setups of {p.name}",
            )
        )
    if p.ban_setups:
        checks.append(
            _check(
                "POLICY_SETUP_BANNED",
                setup not in p.ban_setups,
                f"{setup} {'banned' if setup in p.ban_setups else 'not banned'} in {p.name}",
            )
        )
    rvol = features.get("rvol")
    if p.rvol_min is not None:
        ok = rvol is not None and rvol == rvol and rvol >= p.rvol_min
        checks.append(_check("POLICY_RVOL_MIN", ok, f"rvol {rvol} vs rvol_min {p.rvol_min}"))
    slope = features.get("ema_20_slope")
    have_slope = slope is not None and slope == slope
    if p.ema20_slope_min is not None:
        ok = have_slope and slope >= p.ema20_slope_min
        checks.append(
            _check("POLICY_SLOPE_MIN", ok, f"ema_20_slope {slope} vs min {p.ema20_slope_min}")
        )
    if p.ema20_slope_max is not None:
        ok = have_slope and slope <= p.ema20_slope_max
        checks.append(
            _check("POLICY_SLOPE_MAX", ok, f"ema_20_slope {slope} vs max {p.ema20_slope_max}")
        )
    if p.max_trades is not None:
        checks.append(
            _check(
                "POLICY_MAX_TRADES",
                trades_in_window < p.max_trades,
                f"{trades_in_window} trades in {p.name} today (max {p.max_trades})",
            )
        )
    if p.etf_only:
        ok = execution_symbol in etf_symbols
        checks.append(
            _check("POLICY_ETF_ONLY", ok, f"{execution_symbol} {'is' if ok else 'is not'} an ETF")
        )
    if p.time_stop_sec is not None:
        checks.append(_check("POLICY_TIME_STOP", True, f"trade times out after {p.time_stop_sec}s"))
    return checks


def no_session_check(at: datetime) -> dict:
    return _check("POLICY_NO_SESSION", False, f"{at:%H:%M} is outside every policy session")


def bar_ts_window(book: PolicyBook, policy: SessionPolicy, day: date) -> tuple[datetime, datetime]:
    """Bar START range [a, b) whose closes fall inside the policy window on `day`."""
    start, end = book.window_utc(policy, day)
    return start - timedelta(minutes=1), end - timedelta(minutes=1)
