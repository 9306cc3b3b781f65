"""Did-you-mean suggestions for grid locations: countries first, then states, then zones.

A typo of a country name should be answered with the country, not with a subregion code
that happens to share letters (``Frnace`` -> France, not ``EGRID-FRCC``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

__all__ = ["KIND_RANK", "rank_locations"]

#: Order of suggestion tiers by record kind; unknown kinds come last.
KIND_RANK: dict[str, int] = {
    "country": 0,
    "world": 0,
    "us_state": 1,
    "ca_province": 1,
    "au_state": 1,
    "cn_province": 1,
    "egrid_subregion": 2,
    "bidding_zone": 2,
}


def rank_locations(
    text: str,
    aliases: Mapping[str, str],
    locations: Mapping[str, Mapping[str, Any]],
    n: int = 5,
) -> list[str]:
    """Dataset keys close to ``text`` (already normalized), best first.

    Candidates are aliases within difflib's 0.6 similarity; each key keeps its best
    alias score, and the ``n`` best keys are kept (so a close subregion code is not
    crowded out by distant country codes). They are shown by tier (:data:`KIND_RANK`:
    countries and their codes, then states and provinces, then grid subregions and
    bidding zones), then by score.
    """
    close = difflib.get_close_matches(text, list(aliases), n=max(4 * n, 20), cutoff=0.6)
    best: dict[str, float] = {}
    for alias in close:
        key = aliases[alias]
        score = difflib.SequenceMatcher(None, text, alias).ratio()
        best[key] = max(best.get(key, 0.0), score)

    def order(key: str) -> tuple[int, float, str]:
        kind = str(locations.get(key, {}).get("kind", ""))
        return (KIND_RANK.get(kind, 3), -best[key], key)

    kept = sorted(best, key=lambda key: (-best[key], key))[:n]
    return sorted(kept, key=order)
