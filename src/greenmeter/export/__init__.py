"""Live metrics: the running figures of a run, published while it runs.

Off by default. Turned on by ``EnergyMeter(export=...)``, the callbacks' ``export=``,
``greenmeter run --export SPEC`` or the ``GREENMETER_EXPORT`` environment variable, with
an exporter object or one of these specs (several separated by commas):

* ``prometheus``: a scrape endpoint on ``127.0.0.1:9464``; ``prometheus:PORT`` or
  ``prometheus:ADDR:PORT`` to choose (``prometheus:0.0.0.0:9464`` for every interface);
* ``pushgateway:URL`` (or ``prometheus+push:URL``): push to a Prometheus Pushgateway
  at the start, every 15 s and at the end (for batch jobs that a scraper would miss);
* ``otel`` (or ``opentelemetry``): OpenTelemetry observable instruments on the
  application's global ``MeterProvider``.

Exporting never blocks the training thread and never stops a run: an exporter that cannot
start or reach its collector is a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.export.base import Exporter, ExportError, ExportWarning
from greenmeter.export.figures import LiveFigures, LiveSnapshot, phase_label

__all__ = [
    "EXPORT_ENV",
    "ExportError",
    "ExportWarning",
    "Exporter",
    "LiveFigures",
    "LiveSnapshot",
    "parse_export",
    "phase_label",
]

#: Environment variable holding export specs (comma-separated).
EXPORT_ENV = "GREENMETER_EXPORT"
_KINDS = ("prometheus", "pushgateway", "prometheus+push", "otel", "opentelemetry")


def _one(spec: str) -> Exporter:
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "prometheus":
        from greenmeter.export.prometheus import PrometheusExporter

        if not rest:
            return PrometheusExporter()
        addr, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise ValueError(
                f"export spec {spec!r}: the port must be a number, as in prometheus:9464 or "
                "prometheus:0.0.0.0:9464"
            )
        return PrometheusExporter(int(port), addr=addr.strip("[]") or "127.0.0.1")
    if kind in ("pushgateway", "prometheus+push"):
        from greenmeter.export.prometheus import PrometheusExporter

        if not rest.startswith(("http://", "https://")):
            raise ValueError(
                f"export spec {spec!r}: give the Pushgateway's URL, as in "
                "pushgateway:http://localhost:9091"
            )
        return PrometheusExporter(push_url=rest)
    if kind in ("otel", "opentelemetry") and not rest:
        from greenmeter.export.otel import OpenTelemetryExporter

        return OpenTelemetryExporter()
    import difflib

    close = difflib.get_close_matches(kind, _KINDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown export spec {spec!r}{hint}; use prometheus[:PORT], pushgateway:URL or otel"
    )


def parse_export(export: str | Exporter | Sequence[str | Exporter] | None) -> list[Exporter]:
    """Exporters from specs or objects (see the module docstring); ``None`` gives none.

    Raises:
        ValueError: an unknown or malformed spec (the message says what is expected).
    """
    if export is None:
        return []
    items = [export] if isinstance(export, (str, Exporter)) else list(export)
    out: list[Exporter] = []
    for item in items:
        if isinstance(item, Exporter):
            out.append(item)
        elif isinstance(item, str):
            out.extend(_one(part) for part in item.split(",") if part.strip())
        else:
            raise ValueError(
                f"export must be a spec string or an Exporter, got {type(item).__name__}"
            )
    return out
