"""Optional live intensity from the Electricity Maps API (standard library only).

Off unless configured. One GET to ``{base_url}/carbon-intensity/history?zone=ZONE``
returns the past 24 hourly values for the zone; when a run's span is known,
:func:`fetch_range` asks ``/carbon-intensity/past-range`` for that span. The API token
is read from an environment variable, sent only in the ``auth-token`` header, and never
placed in a return value, warning, log line or exception message.

Transport rules (:func:`check_base_url`, :func:`get`): the base URL is ``https://``, or
plain ``http://`` to a loopback address (tests); a redirect to anything else is refused,
and the token is never carried to another origin. The whole request (name lookup,
connection, TLS, headers and body) has one deadline: a server that answers one byte a
second is given up at the deadline, not after the last byte.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.series import IntensitySeries, parse

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_RESPONSE_BYTES",
    "LiveFetchError",
    "check_base_url",
    "fetch_history",
    "fetch_range",
    "get",
]

DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class LiveFetchError(Exception):
    """The live provider did not give a usable series (message is token-free)."""


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return text


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str):
        return "is not a string"
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.username is not None or parts.password is not None:
        return "carries a user name or password; give the token through live_token_env"
    if not host:
        return "has no host"
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and _is_loopback(host)):
        return None
    return (
        "must use https:// (plain http:// is accepted only to a loopback address such as "
        "http://127.0.0.1:8080, for tests)"
    )


def check_base_url(url: str) -> str:
    """``url`` when the live client may send a request there (https, or http to loopback).

    Raises:
        CarbonError: anything else, naming the rule.
    """
    problem = _url_problem(url)
    if problem:
        raise CarbonError(f"live_base_url {url!r} {problem}")
    return url


class _NoTokenAcrossOrigins(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to https (or loopback http), never carrying the token away."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if _url_problem(newurl) is not None:
            scheme, host, port = _origin(newurl)
            raise urllib.error.URLError(
                f"redirect to {scheme}://{host}{f':{port}' if port else ''} refused: "
                "only https (or http to a loopback address) is followed"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() == "auth-token":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Auth-token", None)
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _tracked(base: type[http.client.HTTPConnection], sockets: list[Any]) -> Any:
    class Connection(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            sockets.append(self.sock)

    return Connection


class _TrackedHTTP(urllib.request.HTTPHandler):
    def __init__(self, sockets: list[Any]) -> None:
        super().__init__()
        self._sockets = sockets

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_tracked(http.client.HTTPConnection, self._sockets), req)


class _TrackedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, sockets: list[Any]) -> None:
        super().__init__()
        self._sockets = sockets

    def https_open(self, req: urllib.request.Request) -> Any:
        connection = _tracked(http.client.HTTPSConnection, self._sockets)
        return self.do_open(connection, req, context=self._context)  # type: ignore[attr-defined]


def get(url: str, headers: Mapping[str, str], *, deadline_s: float) -> bytes:
    """GET ``url``; the body's first ``MAX_RESPONSE_BYTES + 1`` bytes, all within ``deadline_s``.

    The request runs on a helper thread; at the deadline its sockets are shut down and
    :class:`TimeoutError` is raised at once, whatever the server is doing.

    Raises:
        TimeoutError: no complete answer within ``deadline_s`` seconds.
        urllib.error.HTTPError / URLError / OSError: as :mod:`urllib.request` raises them
            (a refused redirect is a ``URLError``).
    """
    sockets: list[Any] = []
    outcome: dict[str, Any] = {}
    done = threading.Event()
    request = urllib.request.Request(url, headers=dict(headers), method="GET")

    def work() -> None:
        try:
            opener = urllib.request.build_opener(
                _NoTokenAcrossOrigins, _TrackedHTTP(sockets), _TrackedHTTPS(sockets)
            )
            with opener.open(request, timeout=deadline_s) as response:
                outcome["body"] = response.read(MAX_RESPONSE_BYTES + 1)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="greenmeter-live-request", daemon=True).start()
    if not done.wait(deadline_s):
        for sock in list(sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise TimeoutError(f"no complete answer within the {deadline_s:g} s deadline")
    if "error" in outcome:
        raise outcome["error"]
    return bytes(outcome["body"])


def fetch_history(
    zone: str, *, token: str | None, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 5.0
) -> IntensitySeries:
    """Fetch the zone's recent hourly intensity.

    Args:
        zone: Provider zone (``"FR"``).
        token: API token (sent in the ``auth-token`` header only), or None.
        base_url: API base URL (see :func:`check_base_url`).
        timeout_s: Deadline for the whole request, seconds.

    Raises:
        LiveFetchError: network error, timeout, HTTP error, or an unusable body.
    """
    problem = _url_problem(base_url)
    if problem:
        raise LiveFetchError(f"live_base_url {base_url!r} {problem}")
    url = (
        base_url.rstrip("/") + "/carbon-intensity/history?" + urllib.parse.urlencode({"zone": zone})
    )
    return _fetch(url, zone, token=token, timeout_s=timeout_s)


def _fetch(url: str, zone: str, *, token: str | None, timeout_s: float) -> IntensitySeries:
    """GET ``url`` and parse the body as a series (errors are token-free)."""
    headers = {"Accept": "application/json", "User-Agent": "greenmeter"}
    if token:
        headers["auth-token"] = token
    try:
        body = get(url, headers, deadline_s=timeout_s)
    except urllib.error.HTTPError as exc:
        raise LiveFetchError(
            _scrub(f"HTTP {exc.code} from Electricity Maps ({url})", token)
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
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

    ``timeout_s`` is the deadline for all the requests together.

    Raises:
        LiveFetchError: any request failed, the deadline passed, or the pieces do not make
            one series.
    """
    import time
    from datetime import datetime, timezone

    problem = _url_problem(base_url)
    if problem:
        raise LiveFetchError(f"live_base_url {base_url!r} {problem}")
    deadline = time.monotonic() + timeout_s  # one deadline for every piece together
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
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            raise LiveFetchError(
                f"request to Electricity Maps timed out after {timeout_s:g} s "
                f"({len(pieces)} of the run's pieces fetched)"
            )
        pieces.append(_fetch(url, zone, token=token, timeout_s=left_s))
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
