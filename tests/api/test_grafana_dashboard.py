"""The Grafana dashboard JSON queries only metrics that exist, covers the spec's names, and
uses the provisioned Prometheus datasource."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import autotrader_site.metrics as app_metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docker/grafana/dashboards/autotrader.json"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def _exposed_names() -> set[str]:
    names = set()
    for metric in vars(app_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            base = metric._name
            names.update(base + s for s in SUFFIXES)
    return names


def _panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_dashboard_is_valid_and_queries_only_real_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "AutoTrader"
    exposed = _exposed_names()
    used = set()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "prometheus"
            used.update(re.findall(r"\bautotrader_[a-z_]+", target["expr"]))
    assert used, "no queries"
    assert used <= exposed, used - exposed
    for spec_name in (
        "autotrader_signal_total",
        "autotrader_tradier_request_total",
        "autotrader_polygon_request_total",
        "autotrader_active_trades",
    ):
        assert spec_name in used


def test_panel_ids_are_unique_and_grid_positions_fit():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
