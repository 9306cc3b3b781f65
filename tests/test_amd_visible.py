"""ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES, applied the way ROCm's runtimes do."""

from __future__ import annotations

import pytest

from greenmeter.sensors.amd_visible import (
    LogicalGpu,
    hip_visible,
    parse_c_long,
    rocr_visible,
    visible_gpus,
)

# Four GPUs; the runtime numbers them in another order than AMD SMI lists them.
SERIALS = [0xA1B2C3D4E5F60001, 0xA1B2C3D4E5F60002, 0x0000FFFF00000003, 0x1234567890ABCDEF]
ORDINALS = [2, 0, 3, 1]
GPUS = [
    LogicalGpu(
        index=i,
        ordinal=ORDINALS[i],
        uuid=f"ff00{i:04x}-0000-1000-8000-{i:012x}",
        rocr_uuid=f"GPU-{s:016x}",
        bdf=f"0000:{0x10 + i:02x}:00.0",
        board=f"0000:{0x10 + i:02x}:00",
    )
    for i, s in enumerate(SERIALS)
]
BY_ORDINAL = sorted(GPUS, key=lambda g: g.ordinal)  # AMD SMI indices 1, 3, 0, 2


def idx(gpus: list[LogicalGpu]) -> list[int]:
    return [g.index for g in gpus]


@pytest.mark.parametrize(
    ("token", "value"),
    [("0", 0), ("7", 7), ("0X1F", 31), ("010", 8), ("-1", -1), ("+2", 2)],
)
def test_indices_are_read_like_strtol_base_0(token: str, value: int) -> None:
    assert parse_c_long(token) == value


@pytest.mark.parametrize("token", ["", "08", "1A", "0X", "1.0", "ONE"])
def test_not_a_whole_number_is_invalid(token: str) -> None:
    assert parse_c_long(token) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [1, 3, 0, 2]),  # unset: every GPU, in the runtime's order
        ("", []),  # set but empty: none
        ("2,0", [0, 1]),  # ordinals 2 and 0, in the order listed
        (" 3 , 1 ", [2, 3]),  # trimmed
        ("0x2", [0]),  # hex, as strtol reads it
        ("1,9,2", [3]),  # out of range: ends the list
        ("1,1,2", [3]),  # a repeat ends the list too
        ("1,x,2", [3]),  # so does an entry that is no number
        ("1,,2", [3]),  # and an empty one
        ("2,", [0]),  # a trailing comma is not an entry
        ("0,1,2,3,0", [1, 3, 0, 2]),  # at most as many entries as GPUs are read
        ("gpu-1234567890abcdef", [3]),  # a UUID, case-insensitive
        ("GPU-A1B2C3D4E5F60002,GPU-0000FFFF", [1, 2]),  # and unique prefixes of one
        ("GPU-A1B2C3D4E5F6,0", []),  # an ambiguous prefix ends the list at once
        ("GPU", []),  # fewer than 5 characters
        ("GPU-A1B2C3D4E5F600020", []),  # more than 20
    ],
)
def test_rocr_visible_devices(spec: str | None, expected: list[int]) -> None:
    assert idx(rocr_visible(BY_ORDINAL, spec)) == expected


def test_rocr_uuid_prefix_that_is_unique_selects_one() -> None:
    assert idx(rocr_visible(BY_ORDINAL, "GPU-A1B2C3D4E5F60001")) == [0]
    assert idx(rocr_visible(BY_ORDINAL, "GPU-A1B2C3D4E5F6000")) == []  # both 0001 and 0002


def test_rocr_skips_gpus_without_unique_id() -> None:
    anonymous = [GPUS[1], LogicalGpu(9, 1, "u", None, "0000:99:00.0", "0000:99:00")]
    assert idx(rocr_visible(anonymous, "GPU-,1")) == []
    assert idx(rocr_visible(anonymous, "1,0")) == [9, 1]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [1, 3, 0, 2]),
        ("", [1, 3, 0, 2]),  # empty: no filter (unlike ROCr)
        ("3,0", [2, 1]),
        ("1,1,0", [3, 1]),  # repeats are skipped, not an end
        ("1, 0", [3]),  # no trimming: " 0" is invalid
        ("01", []),  # only the plain decimal form
        ("0,7,1", [1]),  # out of range ends the list
        ("GPU-a1b2c3d4e5f60001,1", [0, 3]),  # part of the runtime UUID (lower case)
        ("GPU-A1B2C3D4E5F60001", []),  # HIP compares case-sensitively
        ("0,", [1]),
    ],
)
def test_hip_visible_devices(spec: str | None, expected: list[int]) -> None:
    assert idx(hip_visible(BY_ORDINAL, spec)) == expected


def test_hip_indexes_into_what_rocr_left() -> None:
    env = {"ROCR_VISIBLE_DEVICES": "3,1,2", "HIP_VISIBLE_DEVICES": "2,0"}
    # ROCr leaves ordinals 3, 1, 2 (indices 2, 3, 0); HIP takes its 2nd and 0th: 0, 2.
    gpus, why = visible_gpus(GPUS, env)
    assert idx(gpus) == [0, 2] and why is None


def test_cuda_visible_devices_is_read_when_hip_is_unset_or_empty() -> None:
    for env in (
        {"CUDA_VISIBLE_DEVICES": "1"},
        {"HIP_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": "1"},
    ):
        assert idx(visible_gpus(GPUS, env)[0]) == [3]
    both = {"HIP_VISIBLE_DEVICES": "2", "CUDA_VISIBLE_DEVICES": "1"}
    assert idx(visible_gpus(GPUS, both)[0]) == [0]  # HIP's own variable wins


def test_a_variable_hiding_everything_is_named() -> None:
    gpus, why = visible_gpus(GPUS, {"ROCR_VISIBLE_DEVICES": "7"})
    assert gpus == [] and why is not None and "ROCR_VISIBLE_DEVICES='7'" in why
    gpus, why = visible_gpus(GPUS, {"CUDA_VISIBLE_DEVICES": "GPU-5c1e0000-nvidia"})
    assert gpus == [] and why is not None
    assert "CUDA_VISIBLE_DEVICES" in why and "HIP_VISIBLE_DEVICES is not set" in why
    assert visible_gpus([], {"ROCR_VISIBLE_DEVICES": ""}) == ([], None)
