"""`load_config` given a YAML file or `--set` items that are no slic config (deep nesting,
alias bombs, other types, unknown sections and keys, a list or scalar at the top, binary
bytes, numbers of thousands of digits) returns a config or stops with one ConfigError line."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stages.config import SECTIONS, load_config
from tests.fuzz.promise import QUICK, SLOW, examples, kept_promise

KEYS = sorted({f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)})
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["auto", "1e-4", "9" * 5000, ".nan", "-.inf", "0x10", "~"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
SECTIONS_YAML = st.dictionaries(
    st.sampled_from(sorted(SECTIONS)) | st.text(max_size=6),
    st.none() | VALUES | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), VALUES,
                                         max_size=4),
    max_size=4).map(lambda config: yaml.safe_dump(config, allow_unicode=True))
DEEP = 5_000  # past Python's recursion limit, which is what matters
# PyYAML's scanner costs time in proportion to the nesting at each token: each of these
# costs up to a second, so they are read once each (test_deeply_nested_yaml), not drawn.
NESTED = ["[" * DEEP + "]" * DEEP, "{a: " * DEEP + "1" + "}" * DEEP, "- " * 3000 + "x"]
TEXTS = st.sampled_from([
    "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                                             for p, c in zip("abcdefgh", "bcdefghi")),
    "data: &x {root: 1}\ncompute: *x\n", "- 1\n- 2\n", "42", "!!python/object:os.system {}",
    "data: {root: !!binary aGVsbG8=}", "data:\n  workers: " + "9" * 5000,
    "pretrain:\n  epochs: " + "9" * 5000, "? [a, b]\n: 1\n", "data: {root: 1, root: 2}",
    "\t\x00\x01", "data: [1, 2]", "data: {seed: .nan}", "%YAML 9.9\n---\na: 1",
]) | st.text(max_size=80) | SECTIONS_YAML
SET_ITEMS = st.lists(st.tuples(st.sampled_from(sorted(SECTIONS)) | st.text(max_size=4),
                               st.sampled_from(KEYS) | st.text(max_size=4),
                               st.text(max_size=20) | st.sampled_from(["9" * 5000, "&a [*a]",
                                                                       "{", "[[[[1]]]]"]))
                     .map(lambda item: f"{item[0]}.{item[1]}={item[2]}"), max_size=3)


def config_battery(count: int):
    @examples(count)
    @given(text=TEXTS, binary=st.binary(max_size=40), set_items=SET_ITEMS)
    def battery(tmp_path, text, binary, set_items):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        kept_promise(lambda: load_config(path))
        path.write_bytes(binary)
        kept_promise(lambda: load_config(path))
        kept_promise(lambda: load_config(set_items=set_items))

    return battery


test_malformed_configs = config_battery(QUICK * 2)
test_malformed_configs_many = pytest.mark.slow(config_battery(SLOW * 4))


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("# " + "x" * (2 << 20))
    assert "is over 256 KiB" in str(kept_promise(lambda: load_config(path)))


@pytest.mark.parametrize("text", NESTED, ids=["brackets", "braces", "dashes"])
def test_deeply_nested_yaml_is_one_line(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert "nested too deeply" in str(kept_promise(lambda: load_config(path)))
    kept_promise(lambda: load_config(set_items=[f"data.root={text}"]))  # read as text
