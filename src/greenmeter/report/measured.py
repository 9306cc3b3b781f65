"""What was measured: the report's components from the meter's, and the GPUs among them."""

from __future__ import annotations

from typing import Any

from greenmeter.report.inputs import Warnings, clean, opt_float, opt_int, value_of
from greenmeter.report.models import (
    Component,
    CounterComponent,
    EstimatedComponent,
    GpuInfo,
    SampledComponent,
    component_key,
)

__all__ = ["gpu_info", "report_component"]


def report_component(
    info: Any, host: str, status: Any, start_mono: float, warn: Warnings
) -> Component:
    """The report's component for a sensor's ``ComponentInfo`` and its ``ComponentStatus``.

    ``start_mono``: the report's start (monotonic seconds), for the degradation instant.
    """
    degraded = bool(status.degraded) if status else False
    at = opt_float(getattr(status, "degraded_at", None)) if degraded else None
    back = opt_float(getattr(status, "recovered_at", None)) if degraded else None
    key = component_key(info.id, info.host or host)
    detail = {str(k): str(v) for k, v in dict(info.detail or {}).items()}
    method = value_of(info.method)
    common: dict[str, Any] = {
        "key": key,
        "id": info.id,
        "kind": value_of(info.kind),
        "scope": value_of(info.scope),
        "sensor": info.sensor,
        "label": info.label,
        "host": info.host or host,
        "resolution_s": clean(info.resolution_s, f"resolution of {key}", warn, key),
        "shared": bool(info.shared),
        "degraded": degraded,
        "degraded_reason": status.reason if status else None,
        "degraded_at_s": max(0.0, at - start_mono) if at is not None else None,
        "recovered_at_s": max(0.0, back - start_mono) if back is not None else None,
        "detail": detail,
    }
    period = opt_float(info.sampling_period_s)
    if method == "sampled":
        if not period:
            period = common["resolution_s"] or 1.0
            warn.add(
                "report.missing_sampling_period",
                f"{key} is sampled but states no sampling period; {period} s assumed",
                key,
            )
        return SampledComponent(
            method="sampled",
            sampling_period_s=period,
            power_source=detail.get("power_source"),
            **common,
        )
    if method == "estimated":
        return EstimatedComponent(
            method="estimated",
            sampling_period_s=period,
            estimate_model=detail.get("model", "unspecified"),
            estimate_constants=detail.get("constants", "unspecified"),
            estimate_source=detail.get("source"),
            **common,
        )
    return CounterComponent(method="counter", sampling_period_s=period, **common)


#: The vendor of a GPU component whose details do not name one, by sensor.
_GPU_VENDORS = {"nvml": "nvidia", "amdsmi": "amd"}


def gpu_info(component: Component) -> GpuInfo:
    """The GPU facts a GPU component's details state."""
    d = component.detail
    uuid_ = d.get("uuid") or component.id.partition(":")[2] or component.id
    vendor = d.get("vendor") or _GPU_VENDORS.get(component.sensor)
    return GpuInfo(
        uuid=uuid_,
        component=component.key,
        host=component.host,
        vendor=vendor if vendor in ("nvidia", "amd") else None,
        name=d.get("name"),
        index=opt_int(d.get("index")),
        driver_version=d.get("driver_version"),
        architecture=d.get("architecture"),
        pci_bus_id=d.get("pci_bus_id"),
        power_limit_w=opt_float(d.get("power_limit_w")),
        mig=d.get("mig", "false").lower() == "true",
        parent_uuid=d.get("parent_uuid"),
        compute_partition=d.get("compute_partition"),
        partitions=opt_int(d.get("partitions")),
        shared=component.shared,
    )
