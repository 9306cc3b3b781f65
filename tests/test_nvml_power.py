"""Instant power read through NVML's own function, with every value type the field may use."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace
from typing import Any

import pytest

pynvml = pytest.importorskip("pynvml")

from greenmeter.sensors.nvml_power import InstantPower  # noqa: E402

_FIELD = pynvml.c_nvmlFieldValue_t


def _binding(answer: dict[str, Any], calls: list[tuple[int, int]]) -> SimpleNamespace:
    """A stand-in binding whose ``nvmlDeviceGetFieldValues`` is a C-callable function that
    fills the caller's field value from ``answer``, as the driver does."""
    proto = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p)

    def fill(handle: int | None, count: int, ptr: int | None) -> int:
        value = ctypes.cast(ptr, ctypes.POINTER(_FIELD))[0]
        calls.append((int(value.fieldId), count))
        if answer.get("call_error"):
            return answer["call_error"]
        value.nvmlReturn = answer.get("field_error", 0)
        value.valueType = answer["type"]
        setattr(value.value, answer["member"], answer["raw"])
        return 0

    fn = proto(fill)
    return SimpleNamespace(
        _nvmlGetFunctionPointer=lambda name: fn if name == "nvmlDeviceGetFieldValues" else None,
        c_nvmlFieldValue_t=_FIELD,
        c_nvmlValue_t=pynvml.c_nvmlValue_t,
        NVML_SUCCESS=0,
        NVML_FI_DEV_POWER_INSTANT=pynvml.NVML_FI_DEV_POWER_INSTANT,
        NVMLError=pynvml.NVMLError,
        nvmlDeviceGetFieldValues=None,  # the direct path must not fall back
        keep=fn,
    )


@pytest.mark.parametrize(
    ("type_code", "member", "raw", "watts"),
    [
        (pynvml.NVML_VALUE_TYPE_DOUBLE, "dVal", 123456.5, 123.4565),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 3_000_000_123, 3_000_000.123),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, "ullVal", 2**40 + 7, (2**40 + 7) / 1000),
        (pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG, "sllVal", 654321, 654.321),
        (pynvml.NVML_VALUE_TYPE_SIGNED_INT, "siVal", 250001, 250.001),
        (pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT, "usVal", 60000, 60.0),
    ],
)
def test_each_value_type_is_read_from_its_own_member(
    type_code: int, member: str, raw: float, watts: float
) -> None:
    calls: list[tuple[int, int]] = []
    answer = {"type": type_code, "member": member, "raw": raw}
    power = InstantPower(_binding(answer, calls), handle=ctypes.c_void_p(1))
    assert power.read_w() == pytest.approx(watts, rel=1e-12)
    # a second read asks for the same field again (the buffer is reused)
    answer["raw"] = raw / 2 if member == "dVal" else int(raw) // 2
    assert power.read_w() == pytest.approx(answer["raw"] / 1000.0, rel=1e-12)
    assert calls == [(pynvml.NVML_FI_DEV_POWER_INSTANT, 1)] * 2


def test_a_failed_call_and_a_failed_field_raise_nvml_errors_with_their_codes() -> None:
    calls: list[tuple[int, int]] = []
    answer: dict[str, Any] = {"type": 1, "member": "uiVal", "raw": 1000}
    power = InstantPower(_binding(answer, calls), handle=ctypes.c_void_p(1))
    answer["call_error"] = pynvml.NVML_ERROR_TIMEOUT
    with pytest.raises(pynvml.NVMLError) as call_failed:
        power.read_w()
    assert call_failed.value.value == pynvml.NVML_ERROR_TIMEOUT
    answer["call_error"] = 0
    answer["field_error"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    with pytest.raises(pynvml.NVMLError) as field_failed:
        power.read_w()
    assert field_failed.value.value == pynvml.NVML_ERROR_NOT_SUPPORTED
    answer["field_error"] = 0
    assert power.read_w() == pytest.approx(1.0)


def test_a_binding_without_the_function_pointer_uses_the_public_call() -> None:
    seen: list[list[int]] = []

    def field_values(handle: object, ids: list[int]) -> list[Any]:
        seen.append(ids)
        return [SimpleNamespace(nvmlReturn=0, valueType=0, value=SimpleNamespace(dVal=75500.0))]

    def no_pointer(name: str) -> Any:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    nv = SimpleNamespace(
        nvmlDeviceGetFieldValues=field_values,
        _nvmlGetFunctionPointer=no_pointer,
        NVMLError=pynvml.NVMLError,
        NVML_SUCCESS=0,
    )
    assert InstantPower(nv, handle=object()).read_w() == pytest.approx(75.5)
    assert seen == [[pynvml.NVML_FI_DEV_POWER_INSTANT]]
