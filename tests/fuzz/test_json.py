"""`slic inspect` of a results.json that is no JSON, JSON nested past Python's recursion
limit, another encoding, or JSON of other shapes (a list, a number, a 'stage' beside keys
that claim another kind, per_class rows that are no rows) describes it or stops with one
ArtifactError line."""

from __future__ import annotations

import json

import pytest
from hypothesis import strategies as st

from stages.inspect_artifact import describe
from tests.fuzz.promise import QUICK, SLOW, file_battery

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["stage", "kind", "path", "per_class", "top1", "epoch"])
        | st.text(max_size=5), inner, max_size=4), max_leaves=12)
DEEP = 100_000
TEXTS = st.one_of(
    VALUES.map(json.dumps).map(str.encode),
    st.dictionaries(st.sampled_from(["kind", "per_class", "path", "x"]), VALUES).map(
        lambda extra: json.dumps({"stage": "linear_probe", **extra}).encode()),
    st.sampled_from([b"[" * DEEP + b"]" * DEEP, b'{"stage": ' + b"[" * DEEP + b"]" * DEEP
                     + b"}", b"\xff\xfe{}", '{"stage": "é"}'.encode("utf-16"), b"",
                     b'{"stage": 1, "stage": 2}', b"NaN", b'{"stage": Infinity}']),
    st.binary(max_size=40),
)


test_malformed_results = file_battery("results.json", TEXTS, describe, QUICK * 2)
test_malformed_results_many = pytest.mark.slow(
    file_battery("results.json", TEXTS, describe, SLOW * 2))


def test_keys_of_the_description_are_not_overridden(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"stage": "linear_probe", "kind": "checkpoint", "path": "x"}')
    described = describe(path)
    assert described["kind"] == "results" and described["path"] == str(path)
