"""A bounded check of a report's parsed JSON along the models, before pydantic sees it.

Why: pydantic keeps every error it finds, and with each "missing field" error a copy of
the whole object the field is missing from. A 300 KB file of nested objects, each
missing its fields around one large list, took 2.4 GB to reject; a list of 100,000
empty objects where phases belong, 1.3 GB. This walk finds, with a fixed amount of
memory, the problems that cost that much, and the reader rejects the file before
validation starts:

* an object that misses a required field, or has a key twice (JSON allows it; a
  report never does: which value would count?);
* an array where an object belongs, or the other way round, or either where a single
  value belongs (deeply nested junk included);
* objects of a self-nesting model (phases) nested deeper than ``max_depth`` or more
  than ``max_count`` of them;
* many bad values inside the lists and mappings that hold no nested model (intervals,
  latency samples, energy per component, GPUs, warnings...): when a document holds more
  than :data:`SMALL_VALUES` values in those, they are validated here, exactly as pydantic
  would, a bounded piece at a time (:data:`CHUNK_VALUES` values), and the walk stops at
  :data:`MAX_PROBLEMS` problems, so no list can produce millions of errors.

Unknown keys are listed too, but alone they do not stop validation (pydantic reports
them with the other problems at no extra cost). Lists of phases rely on ``fail_fast`` in
the models: pydantic stops at the first bad phase of each list, which bounds what it
collects there (a test checks that every list of nested models has it).

One job, a little over 500 lines: the walk and the plan it follows (what each annotation
of the models asks for, worked out once per model).

Size: about 520 lines, kept in one module because the walk mirrors the report models
field by field; the table of expected shapes and the walker change together.
"""

from __future__ import annotations

import itertools
import json
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from greenmeter.report.errors import format_error_items, format_location

__all__ = [
    "CHUNK_VALUES",
    "MAX_PROBLEMS",
    "SMALL_VALUES",
    "Duplicates",
    "ShapeProblems",
    "check_shape",
]

#: Most values validated in one piece.
CHUNK_VALUES = 4096
#: Values in lists and mappings of a document below which they are left to pydantic
#: alone: so few bad values cost it little.
SMALL_VALUES = 16_384
#: The walk stops after finding this many problems.
MAX_PROBLEMS = 50

_SCALARS = (str, int, float, bool, type(None), datetime, date, AwareDatetime)
_CONFIG = ConfigDict(allow_inf_nan=False)
_MISSING = object()
Path = tuple[Any, ...]


class Duplicates(dict):  # type: ignore[type-arg]
    """A JSON object in which ``key`` appeared more than once (the last value kept)."""

    key: str = ""


class ShapeProblems:
    """What the walk found: one readable line per problem (field path, what is wrong)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.stopped = False
        self._costly = False

    def add(self, path: Path, text: str, *, costly: bool = True) -> None:
        """Note a problem at ``path``; ``costly``: validation must not go on."""
        self.add_line(f"{format_location(path)}: {text}", costly=costly)

    def add_line(self, line: str, *, costly: bool = True) -> None:
        """Note a problem already put in words."""
        if self.full:
            self.stopped = True
            return
        self.lines.append(line)
        self._costly = self._costly or costly

    @property
    def full(self) -> bool:
        """As many problems as are worth finding: the walk stops."""
        return len(self.lines) >= MAX_PROBLEMS

    @property
    def costly(self) -> bool:
        """Validation would be costly: a costly problem, or many problems of any kind."""
        return self._costly or self.full


# --------------------------------------------------------------------------------------
# what an annotation asks for (worked out once per model and kept)


def _unwrap(ann: Any) -> tuple[Any, list[Any], bool]:
    """(the annotation without Annotated and None, its metadata, whether None is allowed)."""
    meta: list[Any] = []
    optional = False
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann, *more = typing.get_args(ann)
            meta.extend(more)
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(ann))
            if len(args) == 1:
                ann = args[0]
                continue
        return ann, meta, optional


def _models_in(ann: Any) -> Iterator[type[BaseModel]]:
    ann, _, _ = _unwrap(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        yield ann
        return
    for arg in typing.get_args(ann):
        yield from _models_in(arg)


def _is_scalar(ann: Any) -> bool:
    ann, _, _ = _unwrap(ann)
    if typing.get_origin(ann) is Literal:
        return True
    if typing.get_origin(ann) in (Union, types.UnionType):
        return all(_is_scalar(a) for a in typing.get_args(ann))
    return isinstance(ann, type) and (issubclass(ann, _SCALARS) or issubclass(ann, Enum))


def _flat_model(model: type[BaseModel]) -> bool:
    """A model none of whose fields holds another model."""
    return not any(any(True for _ in _models_in(f.annotation)) for f in model.model_fields.values())


def _discriminated(ann: Any, meta: Sequence[Any]) -> tuple[str, dict[str, type[BaseModel]]] | None:
    """(the tag field, tag value -> model) of a union of models told apart by a tag."""
    tags = [m.discriminator for m in meta if isinstance(m, FieldInfo) and m.discriminator]
    if not tags or not isinstance(tags[0], str):
        return None
    tag = tags[0]
    choices: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(ann):
        member, _, _ = _unwrap(member)
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        if tag in member.model_fields:
            for value in typing.get_args(member.model_fields[tag].annotation):
                choices[str(value)] = member
    return tag, choices


@dataclass(frozen=True)
class _Plan:
    """What one field holds, and so how the walk treats its value.

    kind: ``scalar`` (a single value), ``model``, ``tagged`` (a union of models told
    apart by ``tag``), ``list``/``tuple``/``dict`` (of items walked one by one),
    ``batch`` (validated by pydantic a piece at a time) or ``other`` (left to pydantic).
    """

    kind: str
    optional: bool = False
    model: type[BaseModel] | None = None
    tag: str = ""
    choices: Mapping[str, type[BaseModel]] = dc_field(default_factory=dict)
    items: tuple[_Plan, ...] = ()
    container: type | None = None
    ann: Any = None
    key: str = ""


@dataclass(frozen=True)
class _ModelPlan:
    fields: Mapping[str, tuple[_Plan, bool]]
    forbid_extra: bool
    nests_itself: bool


_PLANS: dict[type[BaseModel], _ModelPlan] = {}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {}
_PARTS: dict[str, _Plan] = {}


def _plan(ann: Any, meta: Sequence[Any] = ()) -> _Plan:
    bare, inner, optional = _unwrap(ann)
    meta = [*meta, *inner]
    if _is_scalar(bare):
        return _Plan("scalar", optional)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return _Plan("model", optional, model=bare)
    tagged = _discriminated(bare, meta)
    if tagged is not None:
        return _Plan("tagged", optional, tag=tagged[0], choices=tagged[1])
    origin, args = typing.get_origin(bare), typing.get_args(bare)
    if origin not in (list, tuple, set, frozenset, dict) or not args:
        return _Plan("other", optional)
    container = dict if origin is dict else list
    if all(_flat_model(m) for m in _models_in(bare)):
        whole = Annotated[(bare, *meta)] if meta else bare
        return _batch_plan(whole, optional)
    if origin is dict:
        return _Plan("dict", optional, container=dict, items=(_plan(args[1]),))
    if origin is tuple:
        return _Plan("tuple", optional, container=list, items=tuple(_plan(a) for a in args))
    return _Plan("list", optional, container=container, items=(_plan(args[0]),))


def _batch_plan(ann: Any, optional: bool = False) -> _Plan:
    """Validated as a whole; split into its items (or fields) when too large for one piece."""
    bare, _, _ = _unwrap(ann)
    origin, args = typing.get_origin(bare), typing.get_args(bare)
    model = bare if isinstance(bare, type) and issubclass(bare, BaseModel) else None
    if origin is dict and len(args) == 2:
        items: tuple[_Plan, ...] = (_batch_plan(args[0]), _batch_plan(args[1]))
        container: type | None = dict
    elif origin in (list, set, frozenset) and args:
        items, container = (_batch_plan(args[0]),), list
    else:
        items, container = (), (dict if model is not None else None)
    return _Plan(
        "batch", optional, model=model, items=items, container=container, ann=ann, key=repr(ann)
    )


def _model_plan(model: type[BaseModel]) -> _ModelPlan:
    plan = _PLANS.get(model)
    if plan is None:
        fields = {
            (f.alias or n): (_plan(f.annotation, f.metadata), f.is_required())
            for n, f in model.model_fields.items()
        }
        nests = False
        seen: set[type[BaseModel]] = set()
        todo = [model]
        while todo and not nests:
            for field in todo.pop().model_fields.values():
                for inner in _models_in(field.annotation):
                    nests = nests or inner is model
                    if inner not in seen:
                        seen.add(inner)
                        todo.append(inner)
        plan = _ModelPlan(fields, model.model_config.get("extra") == "forbid", nests)
        _PLANS[model] = plan
    return plan


def _part(plan: _Plan) -> _Plan:
    """The plan of a slice of a batched list or mapping: its type without its own limits."""
    part = _PARTS.get(plan.key)
    if part is None:
        part = _batch_plan(_unwrap(plan.ann)[0])
        _PARTS[plan.key] = part
    return part


def _adapter(plan: _Plan) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(plan.key)
    if adapter is None:
        try:
            adapter = TypeAdapter(list[plan.ann], config=_CONFIG)  # type: ignore[name-defined]
        except Exception:  # a type with its own config: that config applies
            adapter = TypeAdapter(list[plan.ann])  # type: ignore[name-defined]
        _ADAPTERS[plan.key] = adapter
    return adapter


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a single value"


# --------------------------------------------------------------------------------------
# the walk


class _Walk:
    def __init__(self, max_depth: int, max_count: int) -> None:
        self.problems = ShapeProblems()
        self.max_depth = max_depth
        self.max_count = max_count
        self.depth: dict[type[BaseModel], int] = {}
        self.count: dict[type[BaseModel], int] = {}
        self.pending: dict[str, tuple[_Plan, list[tuple[Path, Any, int | None]], list[int]]] = {}
        self.batched = 0

    def model(self, value: Any, model: type[BaseModel], path: Path) -> None:
        if not isinstance(value, dict):
            if isinstance(value, list):
                self.problems.add(path, "expected an object, found an array")
            return
        if isinstance(value, Duplicates):
            self.problems.add(path, f"the key {_short(value.key)!r} appears twice (once only)")
        plan = _model_plan(model)
        if plan.nests_itself:
            depth = self.depth.get(model, 0) + 1
            count = self.count.get(model, 0) + 1
            self.count[model] = count
            if depth > self.max_depth:
                limit = self.max_depth
                self.problems.add(path, f"nested more than {limit} levels deep (at most {limit})")
                return
            if count == self.max_count + 1:
                self.problems.add(path, f"more than {self.max_count} of these objects in all")
            if count > self.max_count:
                return
            self.depth[model] = depth
        if plan.forbid_extra:
            for key in value:
                if key not in plan.fields:
                    text = "unknown field (not part of the report schema)"
                    self.problems.add((*path, key), text, costly=False)
        for name, (field, required) in plan.fields.items():
            item = value.get(name, _MISSING)
            if item is _MISSING:
                if required:
                    self.problems.add((*path, name), "required field is missing")
            elif field.kind != "scalar" or isinstance(item, (dict, list)):
                self.field(item, field, (*path, name))
            if self.problems.full:
                break
        if plan.nests_itself:
            self.depth[model] -= 1

    def field(self, value: Any, plan: _Plan, path: Path) -> None:
        kind = plan.kind
        if (value is None and plan.optional) or kind == "other":
            return
        if kind == "scalar":
            if isinstance(value, (dict, list)):
                self.problems.add(path, f"expected a single value, found {_kind(value)}")
        elif kind == "model":
            self.model(value, plan.model, path)  # type: ignore[arg-type]
        elif kind == "tagged":
            if isinstance(value, list):
                self.problems.add(path, "expected an object, found an array")
            elif isinstance(value, dict):
                chosen = plan.choices.get(str(value.get(plan.tag)))
                if chosen is not None:  # else pydantic names the bad tag
                    self.model(value, chosen, path)
        elif plan.container is not None and not isinstance(value, plan.container):
            if isinstance(value, (dict, list)):
                want = _kind(plan.container())
                self.problems.add(path, f"expected {want}, found {_kind(value)}")
        elif isinstance(value, Duplicates):
            self.problems.add(path, f"the key {_short(value.key)!r} appears twice (once only)")
        elif kind == "batch":
            self.batch(plan, value, path)
        elif kind == "dict":
            for key, item in value.items():
                self.field(item, plan.items[0], (*path, key))
        else:
            for i, item in enumerate(value):
                if kind == "tuple" and i >= len(plan.items):
                    break  # pydantic says the tuple is too long
                self.field(item, plan.items[i if kind == "tuple" else 0], (*path, i))
                if self.problems.full:
                    break

    # -- pieces validated by pydantic ----------------------------------------------------

    def batch(self, plan: _Plan, value: Any, path: Path) -> None:
        """Queue ``value`` for exact validation; split one larger than a piece first."""
        size = _size(value, CHUNK_VALUES)
        if size <= CHUNK_VALUES or plan.container is None:
            self.queue(plan, value, path, None, size)
        elif not isinstance(value, plan.container):
            self.queue(plan, value, path, None, 1)  # pydantic names the wrong type
        elif plan.model is not None:
            self.model(value, plan.model, path)  # one large object: field by field
        elif isinstance(value, list):
            self.split_list(plan, value, path)
        else:
            self.split_dict(plan, value, path)

    def split_list(self, plan: _Plan, value: list[Any], path: Path) -> None:
        """Consecutive slices of at most a piece each; an item larger than that alone."""
        part = _part(plan)
        start, size = 0, 0
        for i, item in enumerate(value):
            n = _size(item, CHUNK_VALUES) if isinstance(item, (dict, list)) else 1
            if n > CHUNK_VALUES:
                if i > start:
                    self.queue(part, value[start:i], path, start, size)
                self.batch(plan.items[0], item, (*path, i))
                start, size = i + 1, 0
            elif size + n > CHUNK_VALUES:
                self.queue(part, value[start:i], path, start, size)
                start, size = i, n
            else:
                size += n
            if self.problems.full:
                return
        if start < len(value):
            self.queue(part, value[start:], path, start, size)

    def split_dict(self, plan: _Plan, value: dict[Any, Any], path: Path) -> None:
        """Sub-mappings of at most a piece each; a value larger than that alone."""
        part = _part(plan)
        piece: dict[Any, Any] = {}
        size = 0
        for key, item in value.items():
            n = _size(item, CHUNK_VALUES) if isinstance(item, (dict, list)) else 1
            if n > CHUNK_VALUES:
                self.queue(plan.items[0], key, (*path, key), None, 1)
                self.batch(plan.items[1], item, (*path, key))
                continue
            if size + n > CHUNK_VALUES:
                self.queue(part, piece, path, None, size)
                piece, size = {}, 0
            piece[key] = item
            size += n
            if self.problems.full:
                return
        if piece:
            self.queue(part, piece, path, None, size)

    def queue(self, plan: _Plan, value: Any, path: Path, offset: int | None, size: int) -> None:
        """Hold ``value`` for validation with others of its type, in pieces of a bounded size.

        ``offset``: where a slice of a list starts in the whole list.
        """
        _, units, total = self.pending.setdefault(plan.key, (plan, [], [0]))
        units.append((path, value, offset))
        total[0] += size
        self.batched += size
        if self.batched > SMALL_VALUES:
            for key in [k for k, (_, _, n) in self.pending.items() if n[0] >= CHUNK_VALUES]:
                self.flush(key)

    def flush(self, key: str) -> None:
        plan, units, _ = self.pending.pop(key)
        if self.problems.full or not units:
            return
        text = json.dumps([value for _, value, _ in units])
        try:
            _adapter(plan).validate_json(text, strict=True)
        except ValidationError as exc:
            items = []
            for item in exc.errors(include_url=False):
                loc = item.get("loc", ())
                where, _, offset = units[loc[0]] if loc and isinstance(loc[0], int) else units[0]
                rest = tuple(loc[1:])
                if offset is not None and rest and isinstance(rest[0], int):
                    rest = (rest[0] + offset, *rest[1:])
                items.append({**item, "loc": (*where, *rest)})
            for line in format_error_items(items):
                # a few bad values cost pydantic little: it reports them with the rest
                self.problems.add_line(line, costly=False)

    def finish(self) -> ShapeProblems:
        if self.batched > SMALL_VALUES:
            for key in list(self.pending):
                self.flush(key)
        return self.problems


def _size(value: Any, limit: int) -> int:
    """How many JSON values ``value`` holds, counting no further than ``limit + 1``."""
    count = 1
    todo = [value]
    while todo and count <= limit:
        item = todo.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = itertools.islice(item.values(), limit + 1)
        elif isinstance(item, list):
            children = item[: limit + 1]
        else:
            continue
        for child in children:
            count += 1
            if isinstance(child, (dict, list)):
                todo.append(child)
            if count > limit:
                break
    return count


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_shape(
    document: Any, model: type[BaseModel], *, max_depth: int, max_count: int
) -> ShapeProblems:
    """Walk a parsed JSON document along ``model``'s fields; see this module's docstring.

    Args:
        document: What ``json.loads`` made of the file (objects in which a key repeated
            marked as :class:`Duplicates`).
        model: The model the document should match.
        max_depth: Deepest nesting of a model inside itself (phases in phases).
        max_count: Most objects of a self-nesting model in the whole document.
    """
    walk = _Walk(max_depth, max_count)
    walk.model(document, model, ())
    return walk.finish()
