"""NVML errors: what they mean, which ones pass, and retrying a call that may pass.

Codes and exception classes are ``pynvml``'s own (``pynvml.NVML_ERROR_TIMEOUT``,
``pynvml.NVMLError_Timeout``...), looked up on the module given, so nothing here imports
``pynvml`` at module import.

* **Transient** (:func:`is_transient`): the driver timed out (``NVML_ERROR_TIMEOUT``),
  the GPU is in use by another client (``NVML_ERROR_IN_USE``), not ready
  (``NVML_ERROR_NOT_READY``, where the binding knows it) or an unknown error
  (``NVML_ERROR_UNKNOWN``). Such a call is retried after ``RETRY_DELAYS_S`` (10 ms,
  50 ms, 250 ms), off the training thread, before the board is marked degraded; a
  degraded board is probed again every ``REPROBE_PERIOD_S``.
* **Gone** (``NVML_ERROR_GPU_IS_LOST``, ``NVML_ERROR_RESET_REQUIRED``) and every other
  error: the board stays degraded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "REPROBE_PERIOD_S",
    "RETRY_DELAYS_S",
    "call_with_retry",
    "error_info",
    "error_value",
    "instant_power_field",
    "is_transient",
    "value_members",
]

T = TypeVar("T")

#: Waits before each retry of a call that failed with a transient error (s).
RETRY_DELAYS_S: tuple[float, ...] = (0.010, 0.050, 0.250)
#: A board degraded by transient errors is probed again this often (s).
REPROBE_PERIOD_S = 10.0

_TRANSIENT = (
    "NVML_ERROR_TIMEOUT",
    "NVML_ERROR_IN_USE",
    "NVML_ERROR_NOT_READY",
    "NVML_ERROR_UNKNOWN",
)

# pynvml constant name -> (warning code, plain explanation).
_MEANINGS: dict[str, tuple[str, str]] = {
    "NVML_ERROR_UNINITIALIZED": ("nvml.uninitialized", "NVML was shut down while in use"),
    "NVML_ERROR_NOT_SUPPORTED": ("nvml.not_supported", "the board does not support this reading"),
    "NVML_ERROR_NO_PERMISSION": ("nvml.no_permission", "this user may not read it"),
    "NVML_ERROR_DRIVER_NOT_LOADED": (
        "nvml.driver_not_loaded",
        "the NVIDIA kernel driver is not loaded",
    ),
    "NVML_ERROR_TIMEOUT": ("nvml.timeout", "the driver timed out"),
    "NVML_ERROR_IN_USE": ("nvml.in_use", "the GPU is in use by another client"),
    "NVML_ERROR_LIBRARY_NOT_FOUND": (
        "nvml.library_not_found",
        "the NVIDIA management library is missing",
    ),
    "NVML_ERROR_FUNCTION_NOT_FOUND": (
        "nvml.function_not_found",
        "the installed driver's NVML lacks this function",
    ),
    "NVML_ERROR_GPU_IS_LOST": (
        "nvml.gpu_lost",
        "the GPU is lost (fell off the bus or stopped responding)",
    ),
    "NVML_ERROR_RESET_REQUIRED": ("nvml.reset_required", "the GPU needs a reset"),
}


def _module(nv: Any = None) -> Any:
    return nv if nv is not None else sys.modules.get("pynvml")


def error_value(exc: BaseException) -> int | None:
    """The NVML return code an exception carries (None: not an NVML error)."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def is_transient(exc: BaseException, nv: Any = None) -> bool:
    """The error may pass: worth retrying (see the module docstring)."""
    nv = _module(nv)
    value = error_value(exc)
    if nv is None or value is None:
        return False
    return any(getattr(nv, name, None) == value for name in _TRANSIENT)


def error_info(exc: BaseException, nv: Any = None) -> tuple[str, str]:
    """(warning code, explanation) for an exception raised by an NVML call."""
    nv = _module(nv)
    value = error_value(exc)
    if nv is not None and value is not None:
        for name, (code, text) in _MEANINGS.items():
            if getattr(nv, name, None) == value:
                return code, f"{text} ({exc})"
    return "nvml.error", f"unexpected NVML error: {exc!r}"


def call_with_retry(
    fn: Callable[[], T],
    nv: Any,
    stop: threading.Event | None = None,
    delays_s: tuple[float, ...] | None = None,
) -> T:
    """``fn()``, retried after each of ``delays_s`` (default :data:`RETRY_DELAYS_S`)
    while it fails with a transient error; the last error is raised. Waits on ``stop``
    (set: no more retries). Run it off the training thread: it may wait 0.31 s."""
    delays = RETRY_DELAYS_S if delays_s is None else delays_s
    for delay in delays:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc, nv):
                raise
        if stop is not None:
            if stop.wait(delay):
                break
        else:
            threading.Event().wait(delay)
    return fn()


#: ``nvmlFieldValue_t.valueType`` constant name -> (NVML's value, the union member
#: holding the value); the value is used where a binding lacks the name.
_VALUE_MEMBERS = {
    "NVML_VALUE_TYPE_DOUBLE": (0, "dVal"),
    "NVML_VALUE_TYPE_UNSIGNED_INT": (1, "uiVal"),
    "NVML_VALUE_TYPE_UNSIGNED_LONG": (2, "ulVal"),
    "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG": (3, "ullVal"),
    "NVML_VALUE_TYPE_SIGNED_LONG_LONG": (4, "sllVal"),
    "NVML_VALUE_TYPE_SIGNED_INT": (5, "siVal"),
    "NVML_VALUE_TYPE_UNSIGNED_SHORT": (6, "usVal"),
}
#: NVML's field id of the instantaneous board power (mW), where a binding lacks
#: ``NVML_FI_DEV_POWER_INSTANT`` (bindings older than the field).
_FI_DEV_POWER_INSTANT = 186


def instant_power_field(nv: Any) -> int:
    """``pynvml.NVML_FI_DEV_POWER_INSTANT`` (NVML's id where the binding lacks it)."""
    return int(getattr(nv, "NVML_FI_DEV_POWER_INSTANT", _FI_DEV_POWER_INSTANT))


def value_members(nv: Any = None) -> dict[int, str]:
    """``valueType`` code -> the ``nvmlFieldValue_t.value`` member holding the value,
    by the binding's ``pynvml.NVML_VALUE_TYPE_*`` constants."""
    nv = _module(nv)
    out: dict[int, str] = {}
    for name, (code, member) in _VALUE_MEMBERS.items():
        out.setdefault(int(getattr(nv, name, code)), member)
    return out
