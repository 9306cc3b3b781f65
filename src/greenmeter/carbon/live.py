"""Optional live intensity from the Electricity Maps API (standard library only).

Off unless configured. One GET to ``{base_url}/carbon-intensity/history?zone=ZONE``
returns the past 24 hourly values for the zone. The API token is read from an
environment variable, sent only in the ``auth-token`` header, and never placed in a
return value, warning, log line or exception message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.series import IntensitySeries, parse

__all__ = ["DEFAULT_BASE_URL", "MAX_RESPONSE_BYTES", "LiveFetchError", "fetch_history"]

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
