"""`manage.py setups list` and `manage.py setups check PATH` (docs/strategy.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from strategies.dsl.ast import SetupError


class Command(BaseCommand):
    help = (
        "list: every known setup (name, source, version, enabled, paper/live) and the ones that"
        " failed to load; check PATH: validate a definition file (exit 0 valid, 2 invalid)."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="known setups")
        check = sub.add_parser("check", help="validate a definition file")
        check.add_argument("path")

    def handle(self, *args, **options):
        if options["action"] == "list":
            return self._list()
        return self._check(options["path"])

    def _list(self):
        from strategies.setups.registry import setups_all, setups_broken

        rows = [("NAME", "SOURCE", "VERSION", "ENABLED", "MODE")]
        for e in sorted(setups_all().values(), key=lambda e: (e.kind != "builtin", e.name)):
            rows.append((e.name, e.source, e.version, "yes" if e.enabled else "no", e.mode))
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        for r in rows:
            self.stdout.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
        for e in setups_broken():
            where = f" (line {e.line}, column {e.column})" if e.line else ""
            self.stdout.write(f"NOT LOADED {e.source}{where}: {e.error}")

    def _check(self, path: str):
        from strategies.config import StrategyConfig
        from strategies.setups.definition import parse_definition

        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            d = parse_definition(text, source=str(p), cfg=StrategyConfig.from_settings())
        except SetupError as exc:
            where = f"{p}:{exc.line}:{exc.column}: " if exc.line else f"{p}: "
            self.stderr.write(f"{where}{exc.message}")
            sys.exit(2)
        self.stdout.write(f"{p}: {d.name} version {d.version} is valid")
