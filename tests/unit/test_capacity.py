"""Capacity snapshots: whether a request fits, and the line the form shows."""

from __future__ import annotations

import pytest

from gridspawner.backends.base import Capacity, HostCapacity, empty_capacity
from gridspawner.gpu import GPU

TOL = 0.07
NOW = 1_700_000_000.0


def gpus(*mibs: int, host: str = "h") -> tuple[GPU, ...]:
    return tuple(GPU(i, f"{host}-{i}", f"card{m}", m) for i, m in enumerate(mibs))


def host(name: str, mibs: tuple[int, ...], free: tuple[int, ...] | None = None, error: str | None = None) -> HostCapacity:
    cards = gpus(*mibs, host=name)
    free_idx = range(len(cards)) if free is None else free
    return HostCapacity(name, cards, frozenset(cards[i].uuid for i in free_idx), error)


A100 = 81920
A10 = 23028
T4 = 15360


# ------------------------------------------------------------------ HostCapacity
def test_host_fits():
    h = host("a", (A100, A10, T4), free=(1, 2))
    assert h.reachable
    assert [g.index for g in h.free_gpus()] == [1, 2]
    assert h.fits(0, 80, TOL)
    assert h.fits(2, 16, TOL)
    assert h.fits(1, 24, TOL)
    assert not h.fits(2, 24, TOL)
    assert not h.fits(1, 40, TOL)  # the A100 is busy
    assert not h.fits(3, 0, TOL)


def test_unreachable_host_never_fits():
    h = host("a", (A100,), error="connection refused")
    assert not h.reachable
    assert not h.fits(0, 0, TOL)
    assert not h.fits(1, 0, TOL)


# ------------------------------------------------------------------ Capacity.fits
def test_unknown_capacity_never_blocks():
    assert empty_capacity("b").fits(8, 80, TOL) == (True, "")
    assert not empty_capacity("b").known
    failed = Capacity("b", (host("a", ()),), updated=NOW, error="timeout")
    assert not failed.known
    assert failed.fits(8, 80, TOL) == (True, "")


def test_fits_on_one_host_only():
    cap = Capacity("b", (host("a", (A100, A100)), host("c", (A100, A100))), updated=NOW)
    assert cap.known
    assert cap.fits(2, 80, TOL) == (True, "")
    ok, reason = cap.fits(3, 80, TOL)  # 4 free in total, but at most 2 on one host
    assert not ok
    assert reason == "no host has 3 free GPUs with ≥ 80 GB (at most 2 free now)"


def test_fits_reason_singular_and_any_size():
    cap = Capacity("b", (host("a", (T4, A100), free=(0,)),), updated=NOW)
    ok, reason = cap.fits(1, 40, TOL)
    assert not ok and reason == "no host has 1 free GPU with ≥ 40 GB (at most 0 free now)"
    ok, reason = cap.fits(2, 0, TOL)
    assert not ok and reason == "no host has 2 free GPUs (at most 1 free now)"


def test_fits_zero_gpus_always():
    cap = Capacity("b", (host("a", ()),), updated=NOW)
    assert cap.fits(0, 0, TOL) == (True, "")


def test_fits_no_gpus_backend():
    cap = Capacity("b", (host("a", ()), host("c", ())), updated=NOW)
    assert cap.fits(1, 0, TOL) == (False, "this backend has no GPUs")


def test_fits_all_hosts_unreachable_is_not_no_gpus():
    cap = Capacity("b", (host("a", (A100,), error="down"),), updated=NOW)
    ok, reason = cap.fits(1, 0, TOL)
    assert not ok
    assert "reachable" in reason and "no GPUs" not in reason


def test_fits_ignores_unreachable_host():
    cap = Capacity("b", (host("a", (A100, A100), error="down"), host("c", (T4,))), updated=NOW)
    assert cap.fits(1, 16, TOL) == (True, "")
    ok, reason = cap.fits(2, 80, TOL)
    assert not ok and "at most 0" in reason


# ------------------------------------------------------------------ summary
def test_summary_counts():
    cap = Capacity("b", (host("a", (A100, A100, A10, T4), free=(0, 2, 3)),), updated=NOW)
    assert cap.summary() == "3 of 4 GPUs free, up to 80 GB"
    assert (cap.total_gpus, cap.free_gpus, cap.largest_free_gb) == (4, 3, 80)


def test_summary_largest_free_is_of_free_cards():
    cap = Capacity("b", (host("a", (A100, A10, T4), free=(1, 2)),), updated=NOW)
    assert cap.summary() == "2 of 3 GPUs free, up to 24 GB"


def test_summary_none_free():
    cap = Capacity("b", (host("a", (A100, A100), free=()),), updated=NOW)
    assert cap.summary() == "0 of 2 GPUs free"


def test_summary_across_hosts_and_unreachable():
    cap = Capacity(
        "b",
        (host("a", (A100,)), host("c", (T4, T4), free=(1,)), host("d", (A100,), error="timeout")),
        updated=NOW,
    )
    assert cap.summary() == "2 of 3 GPUs free, up to 80 GB (1 host unreachable)"
    cap2 = Capacity("b", (host("a", (T4,)), host("c", (), error="x"), host("d", (), error="y")), updated=NOW)
    assert cap2.summary() == "1 of 1 GPUs free, up to 16 GB (2 hosts unreachable)"


def test_summary_cpu_only():
    assert Capacity("b", (host("a", ()),), updated=NOW).summary() == "CPU only"
    assert Capacity("b", (host("a", ()), host("c", (), error="x")), updated=NOW).summary() == "CPU only (1 host unreachable)"


def test_summary_all_hosts_unreachable():
    cap = Capacity("b", (host("a", (A100,), error="down"), host("c", (A100,), error="down")), updated=NOW)
    assert "CPU only" not in cap.summary()
    assert "reachable" in cap.summary()


def test_summary_unknown():
    assert empty_capacity("b").summary() == "checking capacity…"
    assert Capacity("b", updated=NOW, error="no answer within 20 s").summary() == "capacity unknown: no answer within 20 s"


def test_free_set_with_stale_uuid_is_not_counted():
    cards = gpus(A100, A100, host="a")
    h = HostCapacity("a", cards, frozenset({cards[0].uuid, "GPU-gone"}))
    cap = Capacity("b", (h,), updated=NOW)
    assert cap.free_gpus == 1
    assert cap.summary() == "1 of 2 GPUs free, up to 80 GB"


@pytest.mark.parametrize("gb, expected", [(0, 2), (24, 2), (40, 1), (96, 0)])
def test_largest_free_count(gb, expected):
    cap = Capacity("b", (host("a", (A100, A10)), host("c", (T4,)), host("d", (A100, A100), error="x")), updated=NOW)
    assert cap.largest_free_count(gb, TOL) == expected
