"""Every known setup, wherever it was written: the seven built-in definitions shipped in
`strategies/setups/builtin/`, definition files in SETUPS_DIR, definitions written in the admin or
the API (`UserSetup`), and Python plug-ins (SETUP_PLUGINS_DIR, entry points).

Read at start-up and again whenever a file or a stored definition changes (a cheap stat of the
folders, at most once a second; saves in this process clear the cache at once). A definition
that does not parse is listed with its error and skipped: it never stops the engine.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time as wall
from dataclasses import dataclass, field
from pathlib import Path

from strategies.config import StrategyConfig
from strategies.dsl.ast import SetupError
from strategies.setups.definition import (
    Definition,
    SetupProgram,
    parse_definition,
    setting_constants,
)
from strategies.setups.names import BUILTIN_SETUPS

log = logging.getLogger(__name__)
BUILTIN_DIR = Path(__file__).with_name("builtin")
BUILTIN_NAMES = BUILTIN_SETUPS
RECHECK_SEC = 1.0


@dataclass
class Entry:
    """One known setup (or one that failed to load: `error` set, `name` may be a file stem)."""

    name: str
    kind: str  # builtin | file | admin | plugin
    source: str
    version: str = ""
    text: str = ""
    enabled: bool = True
    mode: str = "paper"
    error: str = ""
    line: int | None = None
    column: int | None = None
    definition: Definition | None = None
    plugin: type | None = None
    _programs: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    def program(self, cfg: StrategyConfig):
        """The compiled setup for `cfg` (cached per threshold values)."""
        key = tuple(setting_constants(cfg).items())
        hit = self._programs.get(key)
        if hit is not None and (self.plugin is None or hit[0] == cfg):
            return hit[1]
        if self.plugin is not None:
            from strategies.setups.plugins import PluginProgram

            prog = PluginProgram(self.plugin(), cfg, self.version)
        else:
            prog = SetupProgram.build(self.definition, cfg)
        if len(self._programs) > 32:
            self._programs.clear()
        self._programs[key] = (cfg, prog)
        return prog


def _file_entry(path: Path, kind: str) -> Entry:
    try:
        text = path.read_text()
    except OSError as exc:
        return Entry(path.stem.upper(), kind, str(path), error=f"cannot read: {exc}")
    try:
        d = parse_definition(text, source=str(path))
    except SetupError as exc:
        return Entry(
            path.stem.upper(), kind, str(path), text=text, error=exc.message, line=exc.line,
            column=exc.column,
        )  # fmt: skip
    return Entry(d.name, kind, str(path), d.version, text, d.enabled, definition=d)


def _dir_signature(folder: str) -> tuple:
    if not folder:
        return ()
    p = Path(folder)
    try:
        return tuple(
            sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in p.glob("*.y*ml"))
        )
    except OSError:
        return ("unreadable",)


def _db_generation() -> tuple:
    """(count, latest change) of stored definitions and controls; () without a database."""
    try:
        from django.db import connection

        from strategies.models import SetupControl, UserSetup

        users, controls = UserSetup._meta.db_table, SetupControl._meta.db_table
        with connection.cursor() as cursor:  # one round trip (this runs on every live bar)
            cursor.execute(
                f"SELECT (SELECT COUNT(*) FROM {users}), (SELECT MAX(updated_at) FROM {users}),"
                f" (SELECT COUNT(*) FROM {controls}), (SELECT MAX(approved_at) FROM {controls}),"
                f" (SELECT MAX(id) FROM {controls})"
            )
            row = cursor.fetchone()
        return (*row, _local_generation)
    except Exception:  # no database (pure scans, tools) or it is unreachable: files only
        return ()


def _db_entries() -> tuple[list[Entry], dict]:
    try:
        from strategies.models import SetupControl, UserSetup

        users = list(UserSetup.objects.all())
        controls = {c.name: c for c in SetupControl.objects.all()}
    except Exception:
        return [], {}
    out = []
    for u in users:
        try:
            d = parse_definition(u.text, source=f"admin:{u.name}")
        except SetupError as exc:
            out.append(
                Entry(
                    u.name,
                    "admin",
                    f"admin:{u.name}",
                    u.version,
                    u.text,
                    error=exc.message,
                    line=exc.line,
                    column=exc.column,
                )  # fmt: skip
            )
            continue
        out.append(Entry(d.name, "admin", f"admin:{u.name}", d.version, u.text, u.enabled,
                         definition=d))  # fmt: skip
    return out, controls


def _plugin_classes(folder: str) -> list[tuple[type | None, str, str]]:
    """(class or None, source, error) of every plug-in found."""
    from strategies.setups.plugins import ENTRY_POINT_GROUP, SetupPlugin

    found: list[tuple[type | None, str, str]] = []
    modules = []
    if folder:
        for path in sorted(Path(folder).glob("*.py")):
            name = f"autotrader_setup_plugin_{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            except Exception as exc:  # a broken plug-in is listed, never fatal
                found.append((None, str(path), f"import failed: {exc}"))
                continue
            modules.append((module, str(path)))
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:
                found.append((None, f"entry point {ep.name}", f"import failed: {exc}"))
                continue
            if isinstance(obj, type):
                found.append((obj, f"entry point {ep.value}", ""))
            else:
                modules.append((obj, f"entry point {ep.value}"))
    except Exception:
        log.exception("reading setup entry points failed")
    for module, source in modules:
        for obj in vars(module).values():
            mine = getattr(obj, "__module__", None) == getattr(module, "__name__", None)
            if isinstance(obj, type) and issubclass(obj, SetupPlugin) and mine:
                found.append((obj, source, ""))
    return found


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._broken: list[Entry] = []
        self._signature: tuple | None = None
        self._checked = 0.0

    def _settings(self) -> tuple[str, str, tuple]:
        try:
            from django.conf import settings

            return (
                settings.SETUPS_DIR,
                settings.SETUP_PLUGINS_DIR,
                tuple(settings.ENABLED_SETUPS),
            )
        except Exception:
            return "", "", BUILTIN_NAMES

    def invalidate(self) -> None:
        with self._lock:
            self._signature = None

    def snapshot(self) -> tuple[dict[str, Entry], list[Entry]]:
        """(name -> usable entry, broken entries), reloaded when a source changed."""
        with self._lock:
            now = wall.monotonic()
            folder, plugins, enabled_builtins = current = self._settings()
            if (
                self._signature is not None
                and self._signature[:1] == (current,)
                and now - self._checked < RECHECK_SEC
            ):
                return self._entries, self._broken
            signature = (current, _dir_signature(folder), _dir_signature(plugins),
                         _db_generation())  # fmt: skip
            self._checked = now
            if signature != self._signature:
                self._load(folder, plugins, enabled_builtins)
                self._signature = signature
            return self._entries, self._broken

    def _load(self, folder: str, plugins: str, enabled_builtins: tuple) -> None:
        from strategies.setups.plugins import plugin_problem, plugin_version

        candidates: list[Entry] = []
        for name in BUILTIN_NAMES:
            e = _file_entry(BUILTIN_DIR / f"{name.lower()}.yaml", "builtin")
            e.enabled = name in enabled_builtins
            e.mode = "live"
            candidates.append(e)
        if folder:
            for path in sorted(Path(folder).glob("*.y*ml")):
                candidates.append(_file_entry(path, "file"))
        db, controls = _db_entries()
        candidates += db
        for cls, source, error in _plugin_classes(plugins):
            if cls is None:
                candidates.append(Entry(Path(source).stem.upper(), "plugin", source, error=error))
                continue
            problem = plugin_problem(cls)
            e = Entry(getattr(cls, "name", "") or cls.__name__, "plugin", source, error=problem)
            if not problem:
                e.version, e.enabled, e.plugin = plugin_version(cls), bool(cls.enabled), cls
            candidates.append(e)
        entries: dict[str, Entry] = {}
        broken: list[Entry] = []
        for e in candidates:
            if e.ok and e.name in entries:
                e.error = f"duplicate name {e.name} (already defined in {entries[e.name].source})"
            if not e.ok:
                log.error("setup %s (%s) skipped: %s", e.name, e.source, e.error)
                broken.append(e)
                continue
            control = controls.get(e.name)
            if control is not None:
                if control.enabled is not None:
                    e.enabled = control.enabled
                if e.kind != "builtin":
                    e.mode = "live" if control.live_version == e.version else "paper"
            entries[e.name] = e
        self._entries, self._broken = entries, broken


_registry = Registry()
_local_generation = 0


def setups_changed() -> None:
    """Call after writing a definition or control in this process (admin, API, tests)."""
    global _local_generation
    _local_generation += 1
    _registry.invalidate()


def setups_all() -> dict[str, Entry]:
    return _registry.snapshot()[0]


def setups_broken() -> list[Entry]:
    return _registry.snapshot()[1]


def setup_get(name: str) -> Entry | None:
    return setups_all().get(name)


def enabled_names() -> tuple[str, ...]:
    """Enabled setups: the built-ins in their documented order, then the others by name."""
    entries = setups_all()
    builtins = [n for n in BUILTIN_NAMES if n in entries and entries[n].enabled]
    others = sorted(n for n, e in entries.items() if e.kind != "builtin" and e.enabled)
    return tuple(builtins + others)


def programs_for(cfg: StrategyConfig) -> list:
    """The compiled setups of cfg.enabled_setups, in that order; an unknown or broken one is
    logged and skipped (a definition error never stops the engine)."""
    entries = setups_all()
    out = []
    for name in cfg.enabled_setups:
        e = entries.get(name)
        if e is None:
            log.error("setup %s is enabled but not known (or did not load); skipped", name)
            continue
        try:
            out.append(e.program(cfg))
        except SetupError as exc:
            log.error("setup %s does not compile: %s; skipped", name, exc)
    return out
