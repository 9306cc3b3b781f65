"""One board's instant power (W), read as cheaply as the binding allows.

The NVML counter trackers (:mod:`greenmeter.sensors.nvml_tracker`) take every board's
instant power (field ``NVML_FI_DEV_POWER_INSTANT``) several times a second, so the cost
of one read is most of their background CPU. ``pynvml.nvmlDeviceGetFieldValues`` builds
a new ctypes array type and array on every call (about 2 microseconds, more on a cold
cache); :class:`InstantPower` builds its one-element array once per board, with ctypes
views of its return code, value type and value, and calls NVML's function directly.
Where the binding does not expose that function pointer (a stand-in module in tests, a
future binding), it falls back to the public call, with the same result.
"""

from __future__ import annotations

import ctypes
from typing import Any

from greenmeter.sensors.nvml_errors import instant_power_field, value_members

__all__ = ["InstantPower"]


class InstantPower:
    """Instant power of one board.

    Args:
        nv: The initialised ``pynvml`` module (or a stand-in with the same calls).
        handle: The board's NVML handle.
    """

    def __init__(self, nv: Any, handle: Any) -> None:
        self._nv = nv
        self._handle = handle
        self._field = instant_power_field(nv)
        self._ok = int(getattr(nv, "NVML_SUCCESS", 0))
        #: ``valueType`` -> the union member holding the value (``nvml_errors.value_members``)
        self._members = value_members(nv)
        self._direct: _Direct | None = None
        try:
            self._direct = _Direct(nv, self._field, self._members)
        except Exception:  # no direct access: the public call
            self._direct = None

    def read_w(self) -> float:
        """The board's instant power (W).

        Raises:
            Exception: The call or the field failed (``pynvml.NVMLError`` with NVML's
                return code).
        """
        direct = self._direct
        if direct is not None:
            return direct.read_w(self._handle)
        nv = self._nv
        v = nv.nvmlDeviceGetFieldValues(self._handle, [self._field])[0]
        if v.nvmlReturn != self._ok:
            raise nv.NVMLError(v.nvmlReturn)
        return float(getattr(v.value, self._members.get(v.valueType, "uiVal"))) / 1000.0


class _Direct:
    """NVML's ``nvmlDeviceGetFieldValues`` called on one preallocated field value, whose
    return code, value type and value are read through ctypes views made once (each
    ``values[0].member`` access would build a new ctypes object)."""

    def __init__(self, nv: Any, field: int, members: dict[int, str]) -> None:
        self._nv = nv
        self._fn = nv._nvmlGetFunctionPointer("nvmlDeviceGetFieldValues")
        struct, union = nv.c_nvmlFieldValue_t, nv.c_nvmlValue_t
        self._values = values = (struct * 1)()
        self._ref = ctypes.byref(values)
        self._count = ctypes.c_int32(1)
        self._ok = int(getattr(nv, "NVML_SUCCESS", 0))
        self._field = field
        self._field_view = ctypes.c_uint.from_buffer(values, struct.fieldId.offset)
        self._return_view = ctypes.c_uint.from_buffer(values, struct.nvmlReturn.offset)
        self._type_view = ctypes.c_uint.from_buffer(values, struct.valueType.offset)
        types = dict(union._fields_)
        at = struct.value.offset
        self._value_views = {
            code: types[member].from_buffer(values, at + getattr(union, member).offset)
            for code, member in members.items()
            if member in types
        }
        self._default_view = types["uiVal"].from_buffer(values, at + union.uiVal.offset)

    def read_w(self, handle: Any) -> float:
        """Instant power (W) of the board behind ``handle``."""
        self._field_view.value = self._field
        ret = self._fn(handle, self._count, self._ref)
        if ret != self._ok:
            raise self._nv.NVMLError(ret)
        ret = self._return_view.value
        if ret != self._ok:
            raise self._nv.NVMLError(ret)
        view = self._value_views.get(self._type_view.value, self._default_view)
        return float(view.value) / 1000.0
