"""Run tags: short ``key=value`` labels (project, experiment, model, seed, final...).

Tags travel in the report (``Report.tags``) and group runs in a footprint. They come
from ``EnergyMeter(tags={...})``, the callbacks' ``tags=``, ``greenmeter run --tag
key=value`` and the ``GREENMETER_TAGS`` environment variable (``key=value`` pairs
separated by commas).

Rules: a key starts with a letter or ``_`` and has at most 64 letters, digits, ``_``,
``.`` or ``-``; a value is at most 256 characters; at most 64 tags per run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["TAGS_ENV", "TagError", "check_tags", "parse_tags", "tags_from_env"]

#: Environment variable holding ``key=value,key=value`` tags.
TAGS_ENV = "GREENMETER_TAGS"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
MAX_TAGS = 64
MAX_TAG_VALUE = 256


class TagError(ValueError):
    """A tag is malformed; the message names it and the rule it breaks."""


def check_tags(tags: Mapping[str, object] | None) -> dict[str, str]:
    """Validate tags and return them as ``str -> str`` (values converted with ``str``).

    Raises:
        TagError: not a mapping, a bad key, a value too long, or too many tags.
    """
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TagError(
            f"tags must be a mapping of names to values, e.g. {{'experiment': 'ablation'}}; "
            f"got {type(tags).__name__}"
        )
    if len(tags) > MAX_TAGS:
        raise TagError(f"{len(tags)} tags given; a run carries at most {MAX_TAGS}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not _KEY.match(key):
            shown = repr(key)[:80]
            raise TagError(
                f"tag name {shown} is not allowed: start with a letter or '_', then up to 63 "
                "letters, digits, '_', '.' or '-'"
            )
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_TAG_VALUE:
            raise TagError(
                f"tag {key!r} has a value of {len(text)} characters; at most {MAX_TAG_VALUE}"
            )
        out[key] = text
    return out


def parse_tags(text: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``"key=value,key2=value2"`` (or a list of ``key=value``) into tags.

    Raises:
        TagError: an item without ``=`` or a tag that breaks :func:`check_tags`.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: dict[str, str] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise TagError(f"tag {item[:80]!r} has no '='; write tags as key=value")
        out[key.strip()] = value.strip()
    return check_tags(out)


def tags_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Tags from ``GREENMETER_TAGS`` in ``env`` (empty when unset).

    Raises:
        TagError: the variable is malformed (the message names the variable).
    """
    raw = env.get(TAGS_ENV, "")
    if not raw.strip():
        return {}
    try:
        return parse_tags(raw)
    except TagError as exc:
        raise TagError(f"{TAGS_ENV}: {exc}") from None
