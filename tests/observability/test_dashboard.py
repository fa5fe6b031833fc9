"""The Grafana dashboard is valid JSON and charts every worker metric."""

from __future__ import annotations

import json
from pathlib import Path

from framework.observability.metrics import WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "ktf-overview.json"


def test_dashboard_queries_every_exported_metric_with_the_prometheus_datasource() -> None:
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    exported = {
        fam.name
        for fam in WorkerMetrics().registry.collect()
        if fam.name != "ktf_stats_errors"  # internal health of the stats parser
    }
    for name in exported:
        assert name in exprs, f"dashboard has no panel for {name}"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, " in exprs
    for p in panels:
        assert p["datasource"]["uid"] == "prometheus", p["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["uid"] == "ktf-overview"
