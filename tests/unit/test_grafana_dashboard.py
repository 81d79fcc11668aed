"""The Grafana dashboard (deploy/grafana/showdist.json) against the metrics the platform
defines (actors/metrics.py): every PromQL expression names only metrics that a scrape shows
(with Ray's `ray_` prefix and a counter's `_total`), groups and selects only by their labels,
and every metric has a panel, so the dashboard cannot drift from the code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.metrics import (
    ERROR_OUTCOME,
    EXPORT_PREFIX,
    METRICS,
    SUPPLIER_CALL_SECONDS,
    SUPPLIER_CALLS,
    MetricSpec,
)
from suppliers.gateway import Outcome

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "showdist.json"
_SPEC_OF: dict[str, MetricSpec] = {name: spec for spec in METRICS for name in spec.exported}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?:\s*\()?")
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def _parse(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names in selectors, label names in groupings) of `expr`."""
    selector_labels: set[str] = set()
    grouping_labels: set[str] = set()
    text = _STRING.sub('""', expr.replace("$__rate_interval", "5m"))
    text = _RANGE.sub("", text)
    names: set[str] = set()

    def selector(m: re.Match[str]) -> str:
        if m.group(1):
            names.add(m.group(1))
        for matcher in filter(None, (s.strip() for s in m.group(2).split(","))):
            selector_labels.add(re.split(r"=~|!~|!=|=", matcher)[0].strip())
        return " "

    text = _SELECTOR.sub(selector, text)

    def grouping(m: re.Match[str]) -> str:
        grouping_labels.update(s.strip() for s in m.group(1).split(",") if s.strip())
        return " "

    text = _GROUPING.sub(grouping, text)
    text = re.sub(r"label_values\(([^,]+),\s*([A-Za-z_]+)\)", r"\1 ", text)
    for word in _WORD.findall(text):
        if not word.endswith("(") and word not in _PROMQL_WORDS:
            names.add(word)
    return names, selector_labels, grouping_labels


def test_every_expression_names_only_metrics_the_platform_exports() -> None:
    exprs = _expressions(_dashboard())
    assert len(exprs) >= len(METRICS)
    for expr in exprs:
        names, selected, grouped = _parse(expr)
        assert names, expr
        unknown = {n for n in names if n not in _SPEC_OF}
        assert not unknown, f"{expr}: not a metric of actors/metrics.py: {sorted(unknown)}"
        labels = {label for n in names for label in _SPEC_OF[n].labels}
        if any(_SPEC_OF[n].kind.value == "histogram" for n in names):
            labels.add("le")
        assert selected | grouped <= labels, (expr, sorted((selected | grouped) - labels))


def test_every_metric_has_a_panel() -> None:
    used = set().union(*(_parse(e)[0] for e in _expressions(_dashboard())))
    missing = [spec.name for spec in METRICS if not set(spec.exported) & used]
    assert not missing, missing
    assert all(n.startswith(EXPORT_PREFIX) for n in used)


def test_latency_quantiles_are_read_from_the_histogram_buckets() -> None:
    bucket = f"{EXPORT_PREFIX}{SUPPLIER_CALL_SECONDS.name}_bucket"
    quantiles = {
        m.group(1)
        for e in _expressions(_dashboard())
        if bucket in e
        for m in [re.search(r"histogram_quantile\(\s*([0-9.]+)\s*,", e)]
        if m
    }
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_the_not_done_share_counts_every_outcome_but_done() -> None:
    """`error` (the gateway raised) is not done either: the share shows it, and its total."""
    (panel,) = [p for p in _panels(_dashboard()["panels"]) if "not done" in p["title"]]
    exprs = [t["expr"] for t in panel["targets"]]
    assert all(SUPPLIER_CALLS.exported[0] in e for e in exprs), exprs
    outcomes = {o.value for o in Outcome} | {ERROR_OUTCOME}
    shown = {o for o in outcomes for e in exprs if f'outcome="{o}"' in e}
    assert shown == outcomes - {Outcome.DONE.value}
    assert any('outcome!="done"' in e for e in exprs)


def test_the_datasource_is_a_variable_every_panel_uses() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_the_parser_finds_a_name_the_platform_does_not_export() -> None:
    """(So the checks above can fail.)"""
    names, selected, grouped = _parse(
        'sum by (code) (rate(showdist_api_refusals_total{code="x"}[5m])) / on(code) ray_other'
    )
    assert names == {"showdist_api_refusals_total", "ray_other"}
    assert (selected, grouped) == ({"code"}, {"code"})
    assert not names <= set(_SPEC_OF)
