"""GPU inventory parsing, VRAM tolerance, best-fit placement and descriptions."""

from __future__ import annotations

import pytest

from gridspawner.gpu import (
    GPU,
    NVIDIA_SMI_ARGS,
    GPUProbeError,
    describe,
    min_mib,
    nominal_gb,
    parse_nvidia_smi,
    place,
    satisfies,
)

TOL = 0.07

# What `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used
# --format=csv,noheader,nounits` prints on a mixed host (MIG mode shows "[N/A]" for used).
SMI_OUTPUT = """\
0, GPU-1b0e6b33-8a2c-4f1e-9d3b-0c5e1f2a3b4c, NVIDIA A100-SXM4-80GB, 81920, 4
1, GPU-2c1f7c44-9b3d-5a2f-ae4c-1d6f2a3b4c5d, NVIDIA A100-SXM4-80GB, 81920, 40012

2, GPU-3d2a8d55-ac4e-6b3a-bf5d-2e7a3b4c5d6e, NVIDIA A10, 23028, [N/A]
3, GPU-4e3b9e66-bd5f-7c4b-c06e-3f8b4c5d6e7f, Tesla T4, 15360, 0
"""


def gpu(index: int, mib: int, name: str | None = None) -> GPU:
    return GPU(index, f"GPU-{index:04d}", name or f"card{mib}", mib)


# ------------------------------------------------------------------ parsing
def test_nvidia_smi_args():
    assert NVIDIA_SMI_ARGS == (
        "--query-gpu=index,uuid,name,memory.total,memory.used",
        "--format=csv,noheader,nounits",
    )


def test_parse_realistic_output():
    gpus = parse_nvidia_smi(SMI_OUTPUT)
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert gpus[0] == GPU(0, "GPU-1b0e6b33-8a2c-4f1e-9d3b-0c5e1f2a3b4c", "NVIDIA A100-SXM4-80GB", 81920, 4)
    assert gpus[1].memory_used_mib == 40012
    assert gpus[2].name == "NVIDIA A10"
    assert gpus[2].memory_used_mib == 0  # "[N/A]"
    assert gpus[3] == GPU(3, "GPU-4e3b9e66-bd5f-7c4b-c06e-3f8b4c5d6e7f", "Tesla T4", 15360, 0)
    assert [g.memory_gb for g in gpus] == [80, 80, 24, 16]


@pytest.mark.parametrize("text", ["", "\n", "  \n\n \n", " , , , , \n"])
def test_parse_no_gpus(text):
    assert parse_nvidia_smi(text) == []


def test_parse_crlf_and_spaces():
    text = "0,GPU-a,Tesla T4,15360,0\r\n  1 ,  GPU-b , NVIDIA L40S , 46068 , 12 \r\n"
    gpus = parse_nvidia_smi(text)
    assert gpus == [GPU(0, "GPU-a", "Tesla T4", 15360, 0), GPU(1, "GPU-b", "NVIDIA L40S", 46068, 12)]


def test_parse_empty_used_is_zero():
    assert parse_nvidia_smi("0, GPU-a, T4, 15360,\n")[0].memory_used_mib == 0


@pytest.mark.parametrize(
    "line",
    [
        "0, GPU-a, Tesla T4, 15360",  # a column short
        "0, GPU-a, Tesla T4, 15360, 0, extra",
        "index, uuid, name, memory.total [MiB], memory.used [MiB]",  # header (noheader forgotten)
        "0, GPU-a, Tesla T4, 15360 MiB, 0",  # units (nounits forgotten)
        "0, GPU-a, Tesla T4, [N/A], 0",  # total unknown: cannot place on it
        "x, GPU-a, Tesla T4, 15360, 0",
        "0, GPU-a, Tesla T4, 15360, lots",
        "0, GPU-a, Tesla T4, inf, 0",
        "0, GPU-a, Tesla T4, nan, 0",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "No devices were found",
    ],
)
def test_parse_malformed_lines(line):
    with pytest.raises(GPUProbeError) as info:
        parse_nvidia_smi(SMI_OUTPUT + line + "\n")
    assert "unexpected nvidia-smi line" in str(info.value)


def test_parse_error_message_is_bounded():
    with pytest.raises(GPUProbeError) as info:
        parse_nvidia_smi("x" * 10_000)
    assert len(str(info.value)) < 300


def test_gpu_dict_round_trip():
    g = GPU(2, "GPU-x", "NVIDIA A10", 23028, 17)
    assert GPU.from_dict(g.to_dict()) == g
    assert GPU.from_dict({"index": "1", "uuid": "u", "name": "n", "memory_total_mib": "100"}) == GPU(1, "u", "n", 100, 0)


# ------------------------------------------------------------------ tolerance
def test_min_mib():
    assert min_mib(0, TOL) == 0
    assert min_mib(24, TOL) == int(24 * 1024 * 0.93)
    assert min_mib(24, 0) == 24576


@pytest.mark.parametrize(
    "mib, gb, ok",
    [
        (23028, 24, True),  # A10 "24 GB"
        (15360, 16, True),  # T4 "16 GB"
        (15360, 24, False),
        (16384, 24, False),
        (16384, 16, True),
        (40960, 40, True),
        (40960, 80, False),
        (81559, 80, True),  # H100 80GB HBM3
        (46068, 48, True),  # L40S / A40
        (46068, 80, False),
        (1, 0, True),  # 0 = any GPU
    ],
)
def test_satisfies_with_default_tolerance(mib, gb, ok):
    assert satisfies(gpu(0, mib), gb, TOL) is ok


def test_zero_tolerance_is_exact():
    assert not satisfies(gpu(0, 23028), 24, 0)
    assert satisfies(gpu(0, 24576), 24, 0)
    assert not satisfies(gpu(0, 24575), 24, 0)


# ------------------------------------------------------------------ placement
HOST = (
    gpu(0, 81920, "A100"),
    gpu(1, 15360, "T4"),
    gpu(2, 23028, "A10"),
    gpu(3, 81920, "A100"),
    gpu(4, 15360, "T4"),
)


def indices(placed) -> list[int]:
    assert placed is not None
    return [g.index for g in placed]


def test_place_best_fit_smallest_that_fits():
    assert indices(place(HOST, 1, 16, TOL)) == [1]  # a T4, big cards stay free
    assert indices(place(HOST, 1, 24, TOL)) == [2]  # the A10, not an A100
    assert indices(place(HOST, 1, 40, TOL)) == [0]
    assert indices(place(HOST, 2, 0, TOL)) == [1, 4]
    assert indices(place(HOST, 3, 0, TOL)) == [1, 2, 4]


def test_place_mixes_sizes_when_needed():
    assert indices(place(HOST, 2, 24, TOL)) == [0, 2]  # A10 + the lower-index A100
    assert indices(place(HOST, 3, 24, TOL)) == [0, 2, 3]


def test_place_result_sorted_by_index():
    gpus = (gpu(5, 81920), gpu(1, 81920), gpu(3, 23028))
    assert indices(place(gpus, 3, 24, TOL)) == [1, 3, 5]


def test_place_excludes_taken():
    assert indices(place(HOST, 1, 16, TOL, taken=["GPU-0001"])) == [4]
    assert indices(place(HOST, 1, 16, TOL, taken=iter(["GPU-0001", "GPU-0004"]))) == [2]
    assert place(HOST, 2, 40, TOL, taken={"GPU-0000"}) is None
    assert indices(place(HOST, 1, 80, TOL, taken={"GPU-0000", "unknown"})) == [3]


def test_place_not_enough():
    assert place(HOST, 6, 0, TOL) is None
    assert place(HOST, 3, 40, TOL) is None
    assert place(HOST, 1, 96, TOL) is None
    assert place((), 1, 0, TOL) is None


def test_place_count_zero():
    assert place(HOST, 0, 80, TOL) == ()
    assert place((), 0, 0, TOL) == ()


def test_place_16gb_card_never_for_24gb():
    assert place((gpu(0, 16384), gpu(1, 15360)), 1, 24, TOL) is None


# ------------------------------------------------------------------ describe / nominal size
@pytest.mark.parametrize(
    "mib, gb",
    [(15360, 16), (16384, 16), (23028, 24), (24576, 24), (40960, 40), (81559, 80), (81920, 80), (46068, 48), (95830, 94), (143771, 141), (11264, 11)],
)
def test_nominal_gb(mib, gb):
    assert nominal_gb(mib) == gb


def test_describe():
    a100 = [GPU(0, "a", "NVIDIA A100-SXM4-80GB", 81920), GPU(1, "b", "NVIDIA A100-SXM4-80GB", 81920)]
    assert describe(a100) == "GPUs 0,1 — 2× NVIDIA A100-SXM4-80GB 80 GB"
    assert describe([GPU(3, "c", "Tesla T4", 15360)]) == "GPU 3 — 1× Tesla T4 16 GB"
    assert describe([]) == "no GPU"
    mixed = [GPU(0, "a", "NVIDIA A10", 23028), GPU(2, "b", "Tesla T4", 15360), GPU(5, "c", "NVIDIA A10", 23028)]
    assert describe(mixed) == "GPUs 0,2,5 — 2× NVIDIA A10 24 GB, 1× Tesla T4 16 GB"
