"""The one exception type carbon accounting raises for bad user input."""

from __future__ import annotations

__all__ = ["CarbonError"]


class CarbonError(ValueError):
    """A carbon setting is invalid: unknown location, PUE below 1, malformed series...

    The message names the problem and how to fix it. It never contains an API token.
    """
