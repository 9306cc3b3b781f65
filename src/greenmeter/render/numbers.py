"""Number formatting shared by the renderers (plain text; each format escapes it).

Figures are shown with a fixed number of significant digits, trailing zeros dropped,
thousands separated by commas; very small values use an exponent (``1.23e-05``) that
LaTeX and HTML turn into a proper power of ten.

The short figures of the closing line and of ``greenmeter run``'s live display
(:func:`format_energy`, :func:`format_mass`, :func:`format_duration`) are here too.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "EXPONENT",
    "change_pct",
    "fmt_change",
    "fmt_pct",
    "format_duration",
    "format_energy",
    "format_mass",
    "sig",
]

#: Matches the exponent form :func:`sig` produces, e.g. ``"1.23e-05"``.
EXPONENT = re.compile(r"^(-?[0-9.]+)e([+-]?)0*([0-9]+)$")


def _strip(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def sig(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits; ``""`` for None.

    Values of 10**digits and above are rounded to whole numbers with comma thousands
    separators (``12,346``); values below 0.001 use an exponent (``1.235e-05``).
    """
    if value is None:
        return ""
    x = float(value)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 10**digits:
        return f"{x:,.0f}"
    if ax >= 1e-3:
        decimals = max(0, digits - 1 - math.floor(math.log10(ax)))
        text = _strip(f"{x:.{decimals}f}")
        whole, dot, frac = text.partition(".")
        sign = "-" if whole.startswith("-") else ""
        whole = f"{int(whole.lstrip('-') or 0):,}"
        return f"{sign}{whole}{dot}{frac}"
    mantissa, _, exponent = f"{x:.{digits - 1}e}".partition("e")
    return f"{_strip(mantissa)}e{int(exponent):+03d}"


def change_pct(value: float | None, baseline: float | None) -> float | None:
    """Relative change of ``value`` against ``baseline`` in percent; None if undefined."""
    if value is None or baseline is None or baseline == 0:
        return None
    return (value - baseline) / baseline * 100.0


def fmt_change(value: float | None, baseline: float | None) -> str:
    """The change as ``"-62.3%"`` / ``"+4.0%"``; ``""`` when undefined."""
    return fmt_pct(change_pct(value, baseline))


def fmt_pct(pct: float | None) -> str:
    """A relative change in percent as ``"-62.3%"`` / ``"+4.0%"``; ``""`` for None."""
    if pct is None:
        return ""
    if abs(pct) < 0.05:
        return "0.0%"
    return f"{pct:+.1f}%"


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (hours unbounded)."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_energy(energy_j: float) -> str:
    """Joules below one watt-hour, else kWh with three significant digits."""
    if energy_j < 3600.0:
        return f"{energy_j:.0f} J" if energy_j >= 10 else f"{energy_j:.2g} J"
    kwh = energy_j / 3.6e6
    return f"{kwh:.3g} kWh" if kwh < 1000 else f"{kwh:,.0f} kWh"


def format_mass(co2e_g: float) -> str:
    """Grams of CO2e: ``12.3 g``, ``1.42 kg``, ``3.1 t``."""
    if co2e_g < 1000:
        return f"{co2e_g:.3g} g"
    if co2e_g < 1e6:
        return f"{co2e_g / 1000:.3g} kg"
    return f"{co2e_g / 1e6:.3g} t"
