"""How many samples a batch holds: the one definition every loop helper and adapter uses.

No ML framework is imported: tensors and arrays are recognised by their ``.shape``.
The rules, in order:

1. With ``batch_size_fn``, its answer (a non-negative integer; anything else is an
   error naming the function). This is the override for batches the rules get wrong.
2. The first dimension of the first *tensor-like* object (anything whose ``.shape`` has
   at least one dimension: torch tensors, numpy arrays) found walking tuples, lists and
   mappings depth-first, in order. A 0-d tensor has no batch dimension and is skipped.
3. Without any tensor-like, the structure decides:

   * a **list** holds the samples: its ``len()`` (a list of strings, of dicts, of
     sequences: ``{"input_ids": [[1, 2, 3], [4, 5, 6]]}`` has 2);
   * a **mapping** is a batch's fields: the size of its first value (in order) whose
     size these rules can tell;
   * a **tuple** is a structure such as ``(inputs, targets)`` when it holds containers:
     the size of its first list, tuple or mapping that these rules can tell
     (``([x1, x2, x3], [y1, y2, y3])`` has 3); a tuple of plain values (strings,
     numbers) holds the samples: its ``len()``.

4. Anything else (a string, a number, None, an object of unknown type): unknown, None.

Nesting deeper than :data:`MAX_DEPTH` levels is not walked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "batch_size", "count_items"]

#: How deep :func:`batch_size` walks nested tuples, lists and mappings.
MAX_DEPTH = 8
_TEXT = (str, bytes, bytearray)


def count_items(fn: Callable[[Any], Any], batch: Any, what: str) -> int:
    """``fn(batch)`` as a non-negative int (0-d tensors and numpy integers accepted).

    Raises:
        ValueError: the function returned something else (the message names ``what``).
    """
    value = fn(batch)
    if isinstance(value, bool):
        as_int = -1
    else:
        try:
            as_int = int(value)
        except (TypeError, ValueError):
            as_int = -1
    if as_int < 0 or as_int != value:
        raise ValueError(
            f"the {what} function must return a non-negative integer per batch, got {value!r}"
        )
    return as_int


def _tensor_size(obj: Any, depth: int) -> int | None:
    """First dimension of the first tensor-like found in ``obj`` (rule 2)."""
    if depth > MAX_DEPTH or isinstance(obj, _TEXT):
        return None
    shape = getattr(obj, "shape", None)
    if shape is not None and not isinstance(obj, type):
        try:
            if len(shape) >= 1:
                first = int(shape[0])
                return first if first >= 0 else None
        except (TypeError, ValueError):
            pass
        return None
    if isinstance(obj, Mapping):
        values: Any = obj.values()
    elif isinstance(obj, (tuple, list)):
        values = obj
    else:
        return None
    for value in values:
        found = _tensor_size(value, depth + 1)
        if found is not None:
            return found
    return None


def _structure_size(obj: Any, depth: int) -> int | None:
    """The size a batch's structure tells, without tensors (rule 3)."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(obj, list):
        return len(obj)
    if isinstance(obj, Mapping):
        for value in obj.values():
            found = _structure_size(value, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, tuple):
        containers = [v for v in obj if isinstance(v, (list, tuple, Mapping))]
        if not containers:
            return len(obj)
        for value in containers:
            found = _structure_size(value, depth + 1)
            if found is not None:
                return found
    return None


def batch_size(batch: Any, batch_size_fn: Callable[[Any], Any] | None = None) -> int | None:
    """The number of samples in ``batch`` by the rules of this module; None when unknown.

    Args:
        batch: One batch as a loop or a framework hands it over.
        batch_size_fn: ``batch -> int`` that replaces the rules (rule 1).

    Raises:
        ValueError: ``batch_size_fn`` returned something other than a non-negative integer.
    """
    if batch_size_fn is not None:
        return count_items(batch_size_fn, batch, "batch_size_fn")
    found = _tensor_size(batch, 0)
    if found is not None:
        return found
    return _structure_size(batch, 0)
