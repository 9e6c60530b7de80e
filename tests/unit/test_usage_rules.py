"""Prices, quotas and the usage settings: the pure rules and their config errors."""

from __future__ import annotations

import pytest

from gridspawner.catalog import CatalogError
from gridspawner.gpu import GPU
from gridspawner.usage.config import build_usage_config
from gridspawner.usage.pricing import format_money, parse_prices
from gridspawner.usage.quotas import Standing, parse_quotas, quota_out, refusal

RESETS = {"day": "tomorrow", "week": "on 2026-06-01", "month": "on 2026-07-01"}


def gpu(name: str, mib: int) -> GPU:
    return GPU(0, "GPU-x", name, mib)


def test_prices_model_then_memory_class_then_default():
    prices = parse_prices({"currency": "EUR", "gpu_models": {"*a100*80gb*": 2.5, "Tesla T4": 0.35},
                           "gpu_memory": {"40": 1.2, 16: 0.3}, "gpu_hour": 0.5, "cpu_hour": 0.02})
    assert prices.gpu_price("NVIDIA A100-SXM4-80GB", 80) == 2.5  # glob, any case
    assert prices.gpu_price("NVIDIA A100-PCIE-40GB", 40) == 1.2  # memory class
    assert prices.gpu_price("NVIDIA L4", 24) == 0.3  # largest class at most 24 GB
    assert prices.gpu_price("tiny", 8) == 0.5  # default
    placed = [gpu("NVIDIA A100-SXM4-80GB", 81920), gpu("Tesla T4", 15360)]
    assert prices.rate_of(placed, 2, 16, "", cpu=4, memory=None) == pytest.approx(2.5 + 0.35 + 0.08)
    # before placement (the form's estimate): the smallest class that fits the request
    assert prices.estimate_gpu_price(24) == 1.2
    assert format_money(12.5, "EUR") == "12.50 EUR" and format_money(0.004, "EUR") == "0.0040 EUR"


@pytest.mark.parametrize("raw,key", [
    ({"gpu_hour": -1}, "c.GridSpawner.prices['gpu_hour']"),
    ({"gpu_models": {"A100": "cheap"}}, "c.GridSpawner.prices['gpu_models']['A100']"),
    ({"gpu_memory": {"big": 1}}, "c.GridSpawner.prices['gpu_memory']['big']"),
    ({"colour": 1}, "c.GridSpawner.prices['colour']"),
])
def test_bad_prices_name_the_key(raw, key):
    with pytest.raises(CatalogError) as e:
        parse_prices(raw)
    assert key in str(e.value)


def test_quota_limits_user_override_and_most_generous_group():
    q = parse_quotas({"gpu_hours_per_month": 5},
                     {"ml": {"gpu_hours_per_week": 10, "gpus_at_once": 1, "group_gpu_hours_per_month": 400},
                      "phd": {"gpu_hours_per_week": 40, "gpus_at_once": 2}},
                     {"eve": {"gpus_at_once": 4}})
    assert dict(q.limits_for("zed", []).gpu_hours) == {"month": 5}
    both = q.limits_for("ann", ["ml", "phd"])
    assert dict(both.gpu_hours) == {"week": 40} and both.gpus_at_once == 2
    eve = q.limits_for("eve", ["ml"])
    assert dict(eve.gpu_hours) == {"week": 10} and eve.gpus_at_once == 4
    assert dict(q.pools_for(["ml", "phd"])["ml"].gpu_hours) == {"month": 400}


def test_refusal_says_the_numbers():
    q = parse_quotas({"gpu_hours_per_month": 100, "gpus_at_once": 2}, {}, {})
    limits = q.limits_for("ann", [])
    assert refusal(limits, Standing({"month": 98.5}, 0), 1, RESETS) is None
    why = refusal(limits, Standing({"month": 100.2}, 0), 1, RESETS)
    assert why.startswith("you have used 100.2 of 100 GPU-hours this month") and "2026-07-01" in why
    why = refusal(limits, Standing({"month": 1}, 1), 2, RESETS)
    assert "1 GPU in running servers" in why and "at most 2 at once" in why and "ask for at most 1" in why
    assert refusal(limits, Standing({"month": 500}, 5), 0, RESETS) is None  # no GPU: never refused


def test_only_a_gpus_at_once_refusal_that_the_request_fits_waits():
    """A queued run waits for the refusals that end when running GPUs end (runs.quota)."""
    limits = parse_quotas({"gpu_hours_per_month": 100, "gpus_at_once": 2}, {}, {}).limits_for("ann", [])
    why = refusal(limits, Standing({"month": 1}, 2), 2, RESETS)
    assert why.waits and why.wait_text == "waiting: 2 of 2 GPUs at once in use (this run needs 2)"
    assert not refusal(limits, Standing({"month": 1}, 1), 3, RESETS).waits  # never fits: no waiting
    assert not refusal(limits, Standing({"month": 0}, 0), 3, RESETS).waits
    assert not refusal(limits, Standing({"month": 100}, 2), 1, RESETS).waits  # hours used up: no waiting
    group = refusal(limits, Standing({"month": 1}, 2, group="ml"), 1, RESETS)
    assert group.waits and group.wait_text == "waiting: 2 of 2 GPUs at once in use by the group ml (this run needs 1)"


def test_quota_runs_out_at_the_current_rate():
    q = parse_quotas({"gpu_hours_per_day": 3}, {}, {})
    limits = q.limits_for("ann", [])
    stop = quota_out(limits, Standing({"day": 2.0}, 2), {"day": 100_000.0}, now=0.0)
    assert stop.out_at == pytest.approx(1800.0)  # 1 GPU-hour left at 2 GPUs: half an hour
    assert "3 GPU-hours for today run out" in stop.message
    assert quota_out(limits, Standing({"day": 2.0}, 2), {"day": 1000.0}, now=0.0) is None  # the day ends first
    assert quota_out(limits, Standing({"day": 2.0}, 0), {"day": 1e6}, now=0.0) is None


@pytest.mark.parametrize("settings,key", [
    ({"default_quota": {"gpu_hours_per_month": -1}}, "c.GridSpawner.default_quota['gpu_hours_per_month']"),
    ({"group_quotas": {"ml": {"gpus_at_once": 1.5}}}, "c.GridSpawner.group_quotas['ml']['gpus_at_once']"),
    ({"user_quotas": {"ann": {"gpu_hours": 3}}}, "c.GridSpawner.user_quotas['ann']['gpu_hours']"),
    ({"usage_timezone": "Mars/Olympus"}, "c.GridSpawner.usage_timezone"),
    ({"usage_db_url": "not a url"}, "c.GridSpawner.usage_db_url"),
    ({"quota_grace": "soon"}, "c.GridSpawner.quota_grace"),
    ({"quota_check_interval": 0}, "c.GridSpawner.quota_check_interval"),
    ({"record_usage": False, "default_quota": {"gpus_at_once": 1}}, "c.GridSpawner.record_usage"),
])
def test_bad_usage_settings_name_the_key(settings, key):
    with pytest.raises(CatalogError) as e:
        build_usage_config(**settings)
    assert key in str(e.value)


def test_several_bad_usage_settings_are_named_together():
    with pytest.raises(CatalogError) as e:
        build_usage_config(usage_timezone="nowhere", prices={"gpu_hour": "x"}, quota_grace="soon")
    message = str(e.value)
    for key in ("usage_timezone", "prices['gpu_hour']", "quota_grace"):
        assert f"c.GridSpawner.{key}" in message
