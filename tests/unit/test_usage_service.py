"""The usage service's pure parts: query parameters, CSV exports, the chart, the form panel
and what enable_service adds to a hub's configuration."""

from __future__ import annotations

import csv
import io
import json
from zoneinfo import ZoneInfo

import pytest
from traitlets.config import Config

from gridspawner.service.chart import Bar, bar_chart
from gridspawner.service.exports import records_csv, summary_csv
from gridspawner.service.params import ParamErrors, parse_query
from gridspawner.service.settings import ADMIN_ROLE, ADMIN_SCOPE, SETTINGS_ENV, enable_service, hand_over
from gridspawner.service.views import record_row
from gridspawner.usage.form_panel import panel_view, render_panel
from gridspawner.usage.pricing import parse_prices
from gridspawner.usage.quotas import Standing, parse_quotas

UTC = ZoneInfo("UTC")
NOW = 1_780_000_000.0


def test_query_defaults_and_filters():
    q = parse_query({"user": ["ann"], "group": [""], "gpu_model": [""], "by": ["gpu_model"]}, NOW, UTC)
    assert q.period == "month" and q.by == "gpu_model"
    assert q.filters.users == ("ann",) and q.filters.group is None and q.filters.gpu_model is None
    q = parse_query({"from": ["2026-05-01"], "to": ["2026-05-31"]}, NOW, UTC)
    assert q.period == "custom" and q.span.end - q.span.start == 31 * 86400


@pytest.mark.parametrize("args,field", [
    ({"period": ["forever"]}, "period"),
    ({"from": ["01/05/2026"]}, "from"),
    ({"from": ["2026-05-02"], "to": ["2026-05-01"]}, "to"),
    ({"by": ["colour"]}, "by"),
    ({"limit": ["5000"]}, "limit"),
    ({"format": ["xml"]}, "format"),
    ({"user": ["a\x00b"]}, "user"),
])
def test_bad_query_parameters_are_named(args, field):
    with pytest.raises(ParamErrors) as e:
        parse_query(args, NOW, UTC)
    assert field in e.value.errors


def record(**kw) -> dict:
    r = {"id": 1, "kind": "server", "username": "ann", "server_name": "", "groups": ["ml"], "backend": "local",
         "host": "h1", "gpus": 2, "gpu_model": "Tesla T4", "gpu_memory_gb": 16, "image": "lab", "profile": "",
         "started_at": NOW - 7200, "stopped_at": NOW - 3600, "price_per_hour": 1.0, "currency": "EUR",
         "stop_reason": "admin", "stopped_by": "service:idle-culler"}
    r.update(kw)
    return r


def test_record_rows_and_csv_defuse_formulas():
    row = record_row(record(username="=HYPERLINK(\"http://evil\")"), NOW, UTC)
    assert row["gpu_hours"] == pytest.approx(2.0) and row["cost"] == pytest.approx(1.0)
    assert row["reason_text"] == "stopped by idle-culler (a service)"
    assert record_row(record(stopped_at=None, stop_reason=None), NOW, UTC)["hours"] == pytest.approx(2.0)
    text = records_csv([row])
    [parsed] = list(csv.DictReader(io.StringIO(text)))
    assert parsed["user"].startswith("'=")  # a spreadsheet shows it as text, never runs it
    assert parsed["gpu_hours"] == "2" and parsed["stop_reason"] == "admin"
    sums = list(csv.reader(io.StringIO(summary_csv([{"key": "-1+1", "records": 3, "hours": 1.5, "gpu_hours": -0.0,
                                                      "cost": 2.25}], "EUR"))))
    assert sums[0] == ["key", "records", "hours", "gpu_hours", "cost", "currency"]
    assert sums[1][0] == "'-1+1" and sums[1][2] == "1.5"


def test_chart_escapes_labels():
    svg = bar_chart([Bar("<b>", 1.0), Bar("2026-05-02", 3.0)], title="a & b")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and 'aria-label="a &amp; b"' in svg
    assert svg.count("<rect") == 2 and bar_chart([], title="x") == ""


def test_form_panel_lines_and_estimate_data():
    quotas = parse_quotas({}, {"ml": {"gpu_hours_per_month": 10, "gpus_at_once": 1, "group_gpu_hours_per_week": 50}}, {})
    prices = parse_prices({"currency": "EUR", "gpu_memory": {0: 0.5, 40: 1.25}})
    view = panel_view(quotas.limits_for("ann", ["ml"]), Standing({"month": 9.5}, 1), quotas.pools_for(["ml"]),
                      {"ml": Standing({"week": 51.0}, 3, "ml")}, prices, [0, 16, 40], {"local": {}})
    assert view.lines == (
        "You have used 9.5 of 10 GPU-hours this month: 0.5 left.",
        "GPUs at once: 1 in your running servers, at most 1.",
        "The group ml has used 51 of 50 GPU-hours this week: 0 left.",
    )
    assert view.exhausted
    assert view.prices["perGpu"] == {"0": 0.5, "16": 1.25, "40": 1.25}
    html = render_panel(view, "/services/gridspawner/")
    assert 'id="gs-usage-exhausted"' in html and 'id="gs-usage-cost"' in html
    plain = panel_view(parse_quotas({}, {}, {}).limits_for("ann", []), Standing({"month": 2.0}, 0), {}, {},
                       parse_prices({}), [0], {})
    assert plain.lines == ("You have used 2 GPU-hours this month.",) and plain.prices is None
    assert "gs-usage-cost" not in render_panel(plain)


def test_enable_service_extends_the_hubs_config():
    c = Config()
    c.JupyterHub.services = [{"name": "other", "api_token": "x"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=other"]}]
    enable_service(c, port=12345, admin_users=["alice"])
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["other", "gridspawner"]
    spec = c.JupyterHub.services[-1]
    assert spec["url"] == "http://127.0.0.1:12345" and spec["command"][1:] == ["-m", "gridspawner.service"]
    assert ADMIN_SCOPE in c.JupyterHub.custom_scopes
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self", "access:services!service=other", "access:services!service=gridspawner"]
    assert roles[ADMIN_ROLE]["users"] == ["alice"] and ADMIN_SCOPE in roles[ADMIN_ROLE]["scopes"]

    class App:
        services = c.JupyterHub.services

    assert hand_over(App, "sqlite:////srv/u.sqlite", {"usage_db_url": "", "prices": {"gpu_memory": {16: 1.0}}})
    settings = json.loads(spec["environment"][SETTINGS_ENV])
    assert settings == {"db_url": "sqlite:////srv/u.sqlite", "usage": {"prices": {"gpu_memory": {"16": 1.0}}}}
