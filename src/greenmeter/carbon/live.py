"""Optional live intensity from the Electricity Maps API (standard library only).

Off unless configured. One GET to ``{base_url}/carbon-intensity/history?zone=ZONE``
returns the past 24 hourly values for the zone; when a run's span is known,
:func:`fetch_range` asks ``/carbon-intensity/past-range`` for that span. The API token
is read from an environment variable, sent only in the ``auth-token`` header, and never
placed in a return value, warning, log line or exception message.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request

from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.series import IntensitySeries, parse

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_RESPONSE_BYTES",
    "LiveFetchError",
    "fetch_history",
    "fetch_range",
]

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class LiveFetchError(Exception):
    """The live provider did not give a usable series (message is token-free)."""


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return text


class _NoTokenAcrossOrigins(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry the API token to another scheme, host or port."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() == "auth-token":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Auth-token", None)
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)


def fetch_history(
    zone: str, *, token: str | None, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 5.0
) -> IntensitySeries:
    """Fetch the zone's recent hourly intensity.

    Raises:
        LiveFetchError: network error, timeout, HTTP error, or an unusable body.
    """
    url = (
        base_url.rstrip("/") + "/carbon-intensity/history?" + urllib.parse.urlencode({"zone": zone})
    )
    return _fetch(url, zone, token=token, timeout_s=timeout_s)


def _fetch(url: str, zone: str, *, token: str | None, timeout_s: float) -> IntensitySeries:
    """GET ``url`` and parse the body as a series (errors are token-free)."""
    headers = {"Accept": "application/json", "User-Agent": "greenmeter"}
    if token:
        headers["auth-token"] = token
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        opener = urllib.request.build_opener(_NoTokenAcrossOrigins)
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise LiveFetchError(
            _scrub(f"HTTP {exc.code} from Electricity Maps ({url})", token)
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = (
            "timed out"
            if isinstance(reason, TimeoutError) or "timed out" in str(reason)
            else "failed"
        )
        raise LiveFetchError(
            _scrub(f"request to Electricity Maps {kind} ({url}): {reason}", token)
        ) from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise LiveFetchError(f"Electricity Maps response above {MAX_RESPONSE_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        json.loads(text)
        return parse(text, origin=f"electricitymaps:{zone}", fmt="json")
    except (UnicodeDecodeError, ValueError, RecursionError, CarbonError) as exc:
        raise LiveFetchError(
            _scrub(f"unusable Electricity Maps response for zone {zone!r}: {exc}", token)
        ) from None


#: Longest span asked for in one past-range request, seconds (longer spans are split).
RANGE_CHUNK_S = 7 * 86400.0
#: Most requests one history fetch makes (a run longer than this many chunks is not
#: covered past the last one; the energy outside uses the configured out-of-range rule).
MAX_RANGE_REQUESTS = 8


def fetch_range(
    zone: str,
    start_s: float,
    end_s: float,
    *,
    token: str | None,
    base_url: str = DEFAULT_BASE_URL,
    timeout_s: float = 5.0,
) -> IntensitySeries:
    """The zone's hourly intensity from ``start_s`` to ``end_s`` (Unix seconds), whole hours.

    Uses ``{base_url}/carbon-intensity/past-range``, split into spans of at most
    :data:`RANGE_CHUNK_S`; the pieces are joined into one series.

    Raises:
        LiveFetchError: any request failed, or the pieces do not make one series.
    """
    from datetime import datetime, timezone

    hour = 3600.0
    a = float(int(start_s // hour) * hour)
    b = float(-int(-end_s // hour) * hour)
    if b <= a:
        b = a + hour
    pieces: list[IntensitySeries] = []
    t = a
    while t < b and len(pieces) < MAX_RANGE_REQUESTS:
        u = min(b, t + RANGE_CHUNK_S)
        query = {
            "zone": zone,
            "start": datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": datetime.fromtimestamp(u, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        url = base_url.rstrip("/") + "/carbon-intensity/past-range?" + urllib.parse.urlencode(query)
        pieces.append(_fetch(url, zone, token=token, timeout_s=timeout_s))
        t = u
    points: dict[float, float] = {}
    for piece in pieces:
        points.update(zip(piece.times_s, piece.values_g_per_kwh, strict=True))
    text = json.dumps({"data": [[k, points[k]] for k in sorted(points)]})
    try:
        joined = parse(text, origin=f"electricitymaps:{zone}", fmt="json")
    except CarbonError as exc:
        raise LiveFetchError(f"Electricity Maps history for zone {zone!r}: {exc}") from None
    return dataclasses.replace(joined, basis=pieces[0].basis, zone=pieces[0].zone or zone)
