"""One board's instant power (W), read as cheaply as the binding allows.

The NVML counter trackers (:mod:`greenmeter.sensors.nvml_tracker`) take every board's
instant power (field ``NVML_FI_DEV_POWER_INSTANT``) several times a second, so the cost
of one read is most of their background CPU. ``pynvml.nvmlDeviceGetFieldValues`` builds
a new ctypes array type and array on every call (about 2 microseconds, more on a cold
cache); :class:`InstantPower` builds its one-element array once per board and calls
NVML's function directly. Where the binding does not expose that function pointer (a
stand-in module in tests, a future binding), it falls back to the public call, with the
same result.
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
        self._direct: tuple[Any, Any, Any, ctypes.c_int32] | None = None
        try:
            fn = nv._nvmlGetFunctionPointer("nvmlDeviceGetFieldValues")
            values = (nv.c_nvmlFieldValue_t * 1)()
            values[0].fieldId = self._field
            self._direct = (fn, values, ctypes.byref(values), ctypes.c_int32(1))
        except Exception:  # no direct access: the public call
            self._direct = None

    def read_w(self) -> float:
        """The board's instant power (W).

        Raises:
            Exception: The call or the field failed (``pynvml.NVMLError`` with NVML's
                return code).
        """
        nv = self._nv
        direct = self._direct
        if direct is None:
            v = nv.nvmlDeviceGetFieldValues(self._handle, [self._field])[0]
        else:
            fn, values, ref, count = direct
            values[0].fieldId = self._field
            ret = fn(self._handle, count, ref)
            if ret != self._ok:
                raise nv.NVMLError(ret)
            v = values[0]
        if v.nvmlReturn != self._ok:
            raise nv.NVMLError(v.nvmlReturn)
        return float(getattr(v.value, self._members.get(v.valueType, "uiVal"))) / 1000.0
