"""Start-up of the AMD sensor: load ``amdsmi``, list the GPUs, pick each board's reading.

Kept apart from :mod:`greenmeter.sensors.amd` (which reads at run time) because this
part only runs once, talks to the binding in many small ways, and explains at length
what is missing and how to fix it.

* :func:`import_amdsmi`: the binding, or why not (package missing, ``libamd_smi.so``
  missing, binding and library from different ROCm releases).
* :func:`init_unavailable`: what an ``amdsmi_init`` failure means here, with the fix.
* :func:`enumerate_gpus`: every logical GPU AMD SMI lists, with the identities the ROCm
  runtime uses, grouped into physical boards.
* :func:`plan_board`: for one board, which logical device and which reading to use,
  best first: the energy accumulator, else ``current_socket_power``, else
  ``average_socket_power``.

Nothing here imports ``amdsmi`` at module import.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from greenmeter.sensors.amd_visible import LogicalGpu
from greenmeter.sensors.base import ComponentKind, Unavailable
from greenmeter.sensors.readings import timed

__all__ = [
    "SOURCE_AVERAGE",
    "SOURCE_COUNTER",
    "SOURCE_CURRENT",
    "Board",
    "BoardPlan",
    "enumerate_gpus",
    "import_amdsmi",
    "init_unavailable",
    "plan_board",
    "power_plan",
    "power_value",
]

SOURCE_COUNTER = "energy_counter"
SOURCE_CURRENT = "current_socket_power"
SOURCE_AVERAGE = "average_socket_power"

#: A power field at or above this (W) is AMD SMI's "not available" marker (0xFFFF).
_NOT_AVAILABLE_W = 0xFFFF

_GROUPS_FIX = (
    "add this user to the groups owning /dev/kfd and /dev/dri/renderD* "
    "(`sudo usermod -aG render,video $USER`, then log in again); in a container pass "
    "--device=/dev/kfd --device=/dev/dri --group-add video --group-add render"
)


def _unavailable(reason: str, fix: str | None = None) -> Unavailable:
    return Unavailable("amdsmi", ComponentKind.GPU, reason, fix)


def import_amdsmi() -> tuple[Any | None, Unavailable | None]:
    """The ``amdsmi`` module, or None and why it cannot be used.

    The binding loads ``libamd_smi.so`` when imported and prints to standard output when
    it cannot; that output is swallowed here and explained instead.
    """
    if importlib.util.find_spec("amdsmi") is None:
        if not os.path.exists("/sys/module/amdgpu"):
            return None, _unavailable(
                "no AMD GPU driver on this machine (amdgpu is not loaded) and the amdsmi "
                "package (AMD SMI's Python binding) is not installed",
                "for AMD GPUs: install ROCm, then pip install 'greenmeter[amd]'",
            )
        return None, _unavailable(
            "the amdgpu driver is loaded but the amdsmi package (AMD SMI's Python binding) "
            "is not installed",
            "pip install 'greenmeter[amd]' (or the amdsmi version matching your ROCm release)",
        )
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = importlib.import_module("amdsmi")
    except (KeyError, OSError) as exc:  # the binding found no libamd_smi.so
        return None, _unavailable(
            "the amdsmi package is installed but found no AMD SMI library (libamd_smi.so): "
            f"no ROCm on this machine or in this container ({exc!r})",
            "install ROCm's amd-smi-lib and set ROCM_PATH to the ROCm folder (e.g. "
            "/opt/rocm); in a container use a ROCm image",
        )
    except AttributeError as exc:  # a function the binding wraps is missing in the library
        return None, _unavailable(
            f"the amdsmi package is newer than the installed libamd_smi.so ({exc})",
            "install the amdsmi package of your ROCm release (pip install 'amdsmi==<ROCm "
            "version>'), or the one ROCm ships in /opt/rocm/share/amd_smi",
        )
    except Exception as exc:
        return None, _unavailable(f"the amdsmi package failed to import: {exc!r}")
    return module, None


def _device_files_hint() -> str:
    """What is wrong with /dev/kfd for this user, if anything (empty when it looks fine)."""
    if not os.path.exists("/dev/kfd"):
        return (
            "; there is no /dev/kfd (no amdgpu driver, or a container started without "
            "--device=/dev/kfd --device=/dev/dri)"
        )
    if not os.access("/dev/kfd", os.R_OK | os.W_OK):
        return "; this user may not open /dev/kfd"
    return ""


def init_unavailable(code: int | None, exc: BaseException) -> Unavailable:
    """Why ``amdsmi_init`` failed with status ``code``, in plain words, with the fix."""
    hint = _device_files_hint()
    if code == 34:  # AMDSMI_STATUS_DRIVER_NOT_LOADED
        return _unavailable(
            "the AMD SMI library is installed but the amdgpu kernel driver is not loaded "
            f"(no AMD GPU, or the driver failed to start){hint}",
            "check `amd-smi list` and `dmesg | grep amdgpu`; load the driver "
            "(`sudo modprobe amdgpu`) or install it with amdgpu-install",
        )
    if code == 10:  # AMDSMI_STATUS_NO_PERM
        return _unavailable(f"no permission to open the AMD GPU devices{hint}", _GROUPS_FIX)
    if hint:
        return _unavailable(f"AMD SMI failed to initialise ({exc}){hint}", _GROUPS_FIX)
    return _unavailable(f"AMD SMI failed to initialise: {exc!r}")


# -- the GPUs --------------------------------------------------------------------------------


@dataclass
class Board:
    """A physical board (AMD SMI's socket) and its logical devices.

    Attributes:
        key: ``domain:bus:device`` of its PCI address.
        gpus: Its logical devices (one per compute partition), by partition id.
        handles: AMD SMI processor handle per logical device ``index``.
        facts: Identity facts gathered at start-up (name, uuid, partitions...).
    """

    key: str
    gpus: list[LogicalGpu] = field(default_factory=list)
    handles: dict[int, Any] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)


def _try(costs: dict[str, float], fn: Callable[..., Any] | None, *args: Any) -> Any:
    """``fn(*args)`` timed, or None when it is missing or fails in any way."""
    if fn is None:
        return None
    try:
        return timed(costs, getattr(fn, "__name__", "call"), fn, *args)
    except Exception:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rocr_uuid(enum: Any, asic: Any) -> str | None:
    hip_uuid = enum.get("hip_uuid") if isinstance(enum, dict) else None
    if isinstance(hip_uuid, str) and hip_uuid.startswith("GPU-") and len(hip_uuid) == 20:
        try:
            return f"GPU-{int(hip_uuid[4:], 16):016x}"
        except ValueError:
            pass
    serial = asic.get("asic_serial") if isinstance(asic, dict) else None
    try:
        value = int(str(serial), 16)
    except (TypeError, ValueError):
        return None
    return f"GPU-{value:016x}" if 0 < value < 2**64 else None


def enumerate_gpus(amd: Any, costs: dict[str, float]) -> tuple[list[LogicalGpu], dict[str, Board]]:
    """Every logical GPU AMD SMI lists, and the boards they belong to.

    The runtime ordinal comes from ``amdsmi_get_gpu_enumeration_info`` (its HSA id), else
    from the KFD node id of ``amdsmi_get_gpu_kfd_info``, else AMD SMI's own order. The
    partition id comes from the KFD info, else from the order of the board's devices.
    """
    handles = timed(costs, "amdsmi_get_processor_handles", amd.amdsmi_get_processor_handles)
    rows: list[dict[str, Any]] = []
    for i, h in enumerate(handles):
        uuid = _try(costs, amd.amdsmi_get_gpu_device_uuid, h)
        bdf = _try(costs, amd.amdsmi_get_gpu_device_bdf, h)
        kfd = _try(costs, getattr(amd, "amdsmi_get_gpu_kfd_info", None), h)
        enum = _try(costs, getattr(amd, "amdsmi_get_gpu_enumeration_info", None), h)
        asic = _try(costs, amd.amdsmi_get_gpu_asic_info, h)
        kfd = kfd if isinstance(kfd, dict) else {}
        enum = enum if isinstance(enum, dict) else {}
        bdf = str(bdf) if bdf else f"unknown-{i}.0"
        node = _int(enum.get("hsa_id"))
        rows.append(
            {
                "index": i,
                "handle": h,
                "uuid": str(uuid) if uuid else f"amdsmi-{i}",
                "bdf": bdf,
                "board": bdf.rsplit(".", 1)[0],
                "node": node if node is not None else _int(kfd.get("node_id")),
                "partition": _int(kfd.get("current_partition_id")),
                "rocr_uuid": _rocr_uuid(enum, asic),
                "asic": asic if isinstance(asic, dict) else {},
            }
        )
    nodes_known = all(r["node"] is not None for r in rows)
    order = sorted(rows, key=lambda r: (r["node"], r["index"]) if nodes_known else r["index"])
    ordinal = {r["index"]: k for k, r in enumerate(order)}
    boards: dict[str, Board] = {}
    gpus: list[LogicalGpu] = []
    for r in rows:
        board = boards.setdefault(r["board"], Board(r["board"]))
        partition = r["partition"] if r["partition"] is not None else len(board.gpus)
        gpu = LogicalGpu(
            index=r["index"],
            ordinal=ordinal[r["index"]],
            uuid=r["uuid"],
            rocr_uuid=r["rocr_uuid"],
            bdf=r["bdf"],
            board=r["board"],
            partition=partition,
        )
        board.gpus.append(gpu)
        board.handles[gpu.index] = r["handle"]
        if len(board.gpus) == 1:
            board.facts.update(_asic_facts(r["asic"]))
        gpus.append(gpu)
    for board in boards.values():
        board.gpus.sort(key=lambda g: (g.partition, g.index))
    return gpus, boards


def _asic_facts(asic: dict[str, Any]) -> dict[str, str]:
    facts: dict[str, str] = {}
    name = asic.get("market_name")
    if isinstance(name, str) and name and name != "N/A":
        facts["name"] = name
    gfx = asic.get("target_graphics_version")
    if isinstance(gfx, str) and gfx.startswith("gfx") and gfx != "gfxffffffffffffffff":
        facts["architecture"] = gfx
    return facts


# -- the reading per board ---------------------------------------------------------------------


def power_value(info: Any, key: str) -> float | None:
    """Field ``key`` of ``amdsmi_get_power_info``'s result in watts, None when not available."""
    value = info.get(key) if isinstance(info, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < _NOT_AVAILABLE_W else None


@dataclass
class BoardPlan:
    """How one board will be read.

    Attributes:
        board: The board.
        gpu: The logical device whose readings stand for the whole board.
        handle: Its AMD SMI handle.
        source: :data:`SOURCE_COUNTER`, :data:`SOURCE_CURRENT` or :data:`SOURCE_AVERAGE`.
        first: For the counter, the first ``amdsmi_get_energy_count`` result.
        errors: What failed on the way (for the reason when no reading works).
        power_w: For a power field, the value read while planning (W).
    """

    board: Board
    gpu: LogicalGpu
    handle: Any
    source: str
    first: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    power_w: float | None = None


def _error_text(exc: BaseException) -> str:
    info = getattr(exc, "get_error_info", None)
    if callable(info):
        try:
            return str(info())
        except Exception:
            pass
    return repr(exc)


def plan_board(amd: Any, board: Board, costs: dict[str, float]) -> tuple[BoardPlan | None, str]:
    """The best reading of ``board`` and the logical device that gives it.

    Tries the energy accumulator on each logical device in partition order (on a
    partitioned board usually only one answers for the whole board), then the power
    fields (:func:`power_plan`). Returns ``(plan, "")`` or ``(None, what failed)``.
    """
    errors: list[str] = []
    for gpu in board.gpus:
        h = board.handles[gpu.index]
        try:
            first = timed(costs, "amdsmi_get_energy_count", amd.amdsmi_get_energy_count, h)
        except Exception as exc:
            errors.append(f"energy accumulator ({gpu.bdf}): {_error_text(exc)}")
            continue
        raw = (
            first.get("energy_accumulator", first.get("power")) if isinstance(first, dict) else None
        )
        if _int(raw) is not None and isinstance(first.get("counter_resolution"), float | int):
            return BoardPlan(board, gpu, h, SOURCE_COUNTER, first=first, errors=errors), ""
        errors.append(f"energy accumulator ({gpu.bdf}): unexpected answer {first!r}")
    plan = power_plan(amd, board, costs, errors)
    return (plan, "") if plan is not None else (None, "; ".join(dict.fromkeys(errors)))


def power_plan(
    amd: Any, board: Board, costs: dict[str, float], errors: list[str] | None = None
) -> BoardPlan | None:
    """The board's best power field (``current_socket_power``, else the average), or None.

    The plan carries the power read (``power_w``); what failed is appended to ``errors``.
    """
    errors = [] if errors is None else errors
    for source in (SOURCE_CURRENT, SOURCE_AVERAGE):
        for gpu in board.gpus:
            h = board.handles[gpu.index]
            try:
                info = timed(costs, "amdsmi_get_power_info", amd.amdsmi_get_power_info, h)
            except Exception as exc:
                errors.append(f"power info ({gpu.bdf}): {_error_text(exc)}")
                continue
            value = power_value(info, source)
            if value is not None:
                return BoardPlan(board, gpu, h, source, errors=errors, power_w=value)
            errors.append(f"{source} ({gpu.bdf}): not available")
    return None
