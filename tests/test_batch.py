"""The one batch-size rule (greenmeter.core.batch), used by loops and every adapter."""

from __future__ import annotations

from collections import namedtuple

import pytest

from greenmeter.core.batch import MAX_DEPTH, batch_size


class _Shaped:
    """A minimal tensor-like object: only a ``shape``."""

    def __init__(self, *shape: int) -> None:
        self.shape = shape


def test_rule_2_first_tensor_like_wins_depth_first():
    assert batch_size(_Shaped(7, 3)) == 7
    assert batch_size((_Shaped(5, 2), _Shaped(9))) == 5
    assert batch_size([_Shaped(6, 2), _Shaped(6)]) == 6  # collated [inputs, targets]
    # a tensor anywhere beats a structure found earlier
    assert batch_size({"ids": [1, 2], "x": {"pixels": _Shaped(4, 8)}}) == 4
    # 0-d tensors have no batch dimension and are skipped
    assert batch_size([(_Shaped(), 1), _Shaped(6)]) == 6
    assert batch_size(_Shaped()) is None


def test_rule_3_a_list_holds_the_samples():
    assert batch_size([10, 11, 12]) == 3
    assert batch_size(["a", "b"]) == 2
    assert batch_size([{"text": "a"}, {"text": "b"}, {"text": "c"}]) == 3
    assert batch_size([[1, 2, 3], [4, 5, 6]]) == 2  # two sequences of three tokens
    assert batch_size([]) == 0


def test_rule_3_a_mapping_is_the_batch_fields():
    assert batch_size({"input_ids": [[1, 2, 3], [4, 5, 6]]}) == 2
    assert batch_size({"text": "abc", "labels": [0, 1]}) == 2  # strings tell nothing
    assert batch_size({"meta": None, "labels": (0, 1, 1)}) == 3


def test_rule_3_a_tuple_of_containers_is_a_structure():
    inputs, targets = [0.1, 0.2, 0.3], [1, 0, 1]
    assert batch_size((inputs, targets)) == 3
    Batch = namedtuple("Batch", "ids mask")
    assert batch_size(Batch([[1, 2, 3], [4, 5, 0]], [[1, 1, 1], [1, 1, 0]])) == 2
    assert batch_size(("a", "b", "c", "d")) == 4  # plain values: the samples themselves


def test_rule_4_unknown():
    assert batch_size("a sentence") is None
    assert batch_size(b"bytes") is None
    assert batch_size(42) is None
    assert batch_size(None) is None
    assert batch_size(object()) is None
    assert batch_size({"text": "abc"}) is None


def test_nesting_beyond_the_depth_limit_is_not_walked():
    deep: object = _Shaped(5)
    for _ in range(MAX_DEPTH + 2):
        deep = {"x": deep}
    assert batch_size(deep) is None


def test_batch_size_fn_overrides_the_rules():
    assert batch_size({"input_ids": [[1, 2, 3]]}, lambda b: 7) == 7

    class ZeroD:  # a 0-d tensor or a numpy integer: int() works
        def __int__(self) -> int:
            return 4

        def __eq__(self, other: object) -> bool:
            return other == 4

    assert batch_size(None, lambda b: ZeroD()) == 4
    for bad in (-1, 2.5, "3", True, None):
        with pytest.raises(ValueError, match="batch_size_fn"):
            batch_size([1], lambda b, bad=bad: bad)


def test_adapters_use_the_same_rule():
    from greenmeter import loops

    assert loops.batch_size is batch_size
    lightning_common = pytest.importorskip("greenmeter.integrations._lightning_common")
    assert lightning_common.batch_size is batch_size
