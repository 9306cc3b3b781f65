"""``greenmeter doctor``: what this host can measure, how, and how to fix the rest.

Lists the components greenmeter would measure here with the method of each (counter,
sampled, estimated), every source it could not use with the reason and the command
that fixes it, and the carbon settings the resolver arrives at. Sources that were not
requested, or not needed because another source measures the same thing, are not
listed as unavailable (:func:`worth_listing`).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any, TextIO

from greenmeter import __version__

__all__ = ["diagnose", "doctor", "format_diagnosis", "worth_listing"]

_METHOD_NOTE = {
    "counter": "hardware energy counter (exact)",
    "sampled": "power samples integrated over time",
    "estimated": "model estimate, not a measurement",
}


def worth_listing(reason: str) -> bool:
    """Whether a source that was not used is worth listing as unavailable.

    Not when it was not requested (pyRAPL, which reads the same counters as RAPL, is
    used only on request) or not needed (another source measures the same thing): the
    discovery says so at the start of its reason.
    """
    low = reason.strip().lower()
    return not (low.startswith("not needed") or "not requested" in low)


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def diagnose(
    *,
    powercap_root: str | None = None,
    gpus: Sequence[int | str] | None = None,
    gpu: bool = True,
    carbon: Any = None,
) -> dict[str, Any]:
    """Probe the host and resolve carbon settings; returns plain JSON-able data.

    Keys: ``greenmeter_version``, ``host``, ``components`` (id, kind, scope, method,
    sensor, label, detail), ``unavailable`` (sensor, kind, reason, fix), ``settings``
    (each carbon setting given anywhere: setting, value, source, used),
    ``config_problems`` (code, message, source, setting, fatal), ``carbon`` (the
    resolved settings, or None with ``carbon_error``) and ``carbon_warnings``.
    """
    from greenmeter.sensors.discover import discover

    found = discover(powercap_root=powercap_root, gpus=gpus, gpu=gpu)
    try:
        components = [
            {
                "id": c.id,
                "kind": _value(c.kind),
                "scope": _value(c.scope),
                "method": _value(c.method),
                "sensor": c.sensor,
                "label": c.label,
                "shared": c.shared,
                "detail": dict(c.detail),
            }
            for s in found.sensors
            for c in s.components()
        ]
    finally:
        for sensor in found.sensors:
            try:
                sensor.close()
            except Exception:
                pass
    unavailable = [
        {"sensor": u.sensor, "kind": _value(u.kind), "reason": u.reason, "fix": u.fix}
        for u in found.unavailable
        if worth_listing(u.reason)
    ]
    out: dict[str, Any] = {
        "greenmeter_version": __version__,
        "host": socket.gethostname(),
        "components": components,
        "unavailable": unavailable,
        "settings": [],
        "config_problems": [],
        "carbon": None,
        "carbon_warnings": [],
    }
    from dataclasses import asdict

    from greenmeter.carbon.check import check_configuration, setting_sources

    out["settings"] = [_jsonable(asdict(s)) for s in setting_sources(carbon)]
    out["config_problems"] = [asdict(p) for p in check_configuration(carbon)]
    try:
        from greenmeter.carbon import resolve

        acct = resolve(carbon)
        info = getattr(acct, "info", None)
        out["carbon"] = info.model_dump(mode="json") if info is not None else None
        out["carbon_warnings"] = [
            {"code": code, "message": message} for code, message in acct.warnings
        ]
    except Exception as exc:  # carbon problems are reported, not fatal, here
        out["carbon_error"] = str(exc)
    return out


def _gpu_lines(c: dict[str, Any]) -> list[str]:
    """What a GPU component reads, where the board is, and why it is shared, if it is."""
    d = c["detail"]
    reading = [str(d.get("power_source", "unknown reading"))]
    if d.get("read_cost_ms"):
        reading.append(f"one read {d['read_cost_ms']} ms")
    if d.get("counter_step_s"):
        reading.append(f"counter step {float(d['counter_step_s']) * 1e3:.3g} ms")
    labels = (("pci_bus_id", "PCI"), ("rocr_uuid", "ROCm id"), ("driver_version", "driver"))
    board = [f"{label} {d[key]}" for key, label in labels if d.get(key)]
    if d.get("power_limit_w"):
        board.append(f"power cap {d['power_limit_w']} W")
    lines = [f"      reading: {', '.join(reading)}"]
    if board:
        lines.append(f"      board: {', '.join(board)}")
    why = []
    if d.get("mig") == "true":
        why.append("MIG is on (the parent board is measured)")
    partitions = d.get("partitions", "1")
    if partitions.isdigit() and int(partitions) > 1:
        mode = f" {d['compute_partition']}" if d.get("compute_partition") else ""
        why.append(
            f"split into {partitions}{mode} partitions, this process uses "
            f"{d.get('visible_partitions') or 'none'} (the whole board is measured once)"
        )
    other = d.get("other_processes", "0")
    if other.isdigit() and int(other) > 0:
        why.append(f"{other} other process(es) on it")
    if why:
        lines.append(f"      shared: {'; '.join(why)}")
    return lines


def _jsonable(item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("value")
    if not isinstance(value, (str, int, float, bool, type(None))):
        item["value"] = repr(value)
    return item


def _configuration_lines(diag: dict[str, Any]) -> list[str]:
    settings = diag.get("settings", [])
    problems = diag.get("config_problems", [])
    if not settings and not problems:
        return ["", "Configuration: nothing set (defaults)"]
    lines = ["", "Configuration:"]
    for s in settings:
        note = "" if s["used"] else "  (overridden by the source above)"
        lines.append(f"  {s['setting']} = {s['value']!r}  from {s['source']}{note}")
    for p in problems:
        kind = "error" if p["fatal"] else "note"
        lines.append(f"  {kind}: {p['message']}")
    return lines


def format_diagnosis(diag: dict[str, Any]) -> str:
    """The human-readable text of :func:`diagnose`'s result."""
    lines = [f"greenmeter {diag['greenmeter_version']} on {diag['host']}", ""]
    comps = diag["components"]
    lines.append("Measured components:" if comps else "Measured components: none")
    for c in comps:
        lines.append(f"  {c['id']}  ({c['kind']}, {c['scope']})  {c['label']}")
        lines.append(f"      method: {c['method']}: {_METHOD_NOTE.get(c['method'], '')}")
        if c["method"] == "estimated":
            for key in ("model", "constants", "source"):
                if c["detail"].get(key):
                    lines.append(f"      {key}: {c['detail'][key]}")
        if c["kind"] == "gpu":
            lines += _gpu_lines(c)
    if diag["unavailable"]:
        lines += ["", "Not available:"]
        for u in diag["unavailable"]:
            lines.append(f"  {u['sensor']} ({u['kind']}): {u['reason']}")
            lines.append(f"      fix: {u['fix']}" if u["fix"] else "      fix: none needed")
    lines += _configuration_lines(diag)
    lines += ["", "Carbon:"]
    carbon = diag.get("carbon")
    if carbon is None:
        lines.append(f"  not resolved: {diag.get('carbon_error', 'carbon accounting unavailable')}")
    else:
        it = carbon["intensity"]
        where = it.get("location_name") or it.get("location") or it.get("cloud_region") or "?"
        year = f", {it['year']}" if it.get("year") else ""
        flag = "  (FALLBACK: no location given)" if it.get("is_fallback") else ""
        lines.append(
            f"  grid intensity: {it['value_g_per_kwh']:g} {it['unit']} for {where}{year} "
            f"[{it['resolved_from']}]{flag}"
        )
        lines.append(
            f"      source: {it['source']}" + (f" ({it['licence']})" if it.get("licence") else "")
        )
        pue = carbon["pue"]
        preset = f" ({pue['preset']})" if pue.get("preset") else ""
        lines.append(f"  PUE: {pue['value']:g}{preset} [{pue['resolved_from']}]")
        lines.append(f"      source: {pue['source']}")
    for w in diag.get("carbon_warnings", []):
        lines.append(f"  warning: {w['message']}")
    return "\n".join(lines) + "\n"


def doctor(
    *,
    powercap_root: str | None = None,
    gpus: Sequence[int | str] | None = None,
    gpu: bool = True,
    carbon: Any = None,
    as_json: bool = False,
    out: TextIO,
) -> int:
    """Print the diagnosis (text or JSON) to ``out``; returns 0."""
    diag = diagnose(powercap_root=powercap_root, gpus=gpus, gpu=gpu, carbon=carbon)
    if as_json:
        out.write(json.dumps(diag, indent=2) + "\n")
    else:
        out.write(format_diagnosis(diag))
    return 0
