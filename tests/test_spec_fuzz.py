"""Property-based fuzzing of the spec loader (hypothesis): whatever YAML a user
writes - a mutated valid spec or arbitrary text - loading and expanding it either
works or raises a clear error (what ``launch/sweep.py`` turns into exit code 2 with
the message); it never crashes with anything else, and it writes nothing."""

import copy
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launch.expand import expand
from launch.spec import SpecError, load_spec

from .conftest import TOY

EXAMPLES = 300
# what main() maps to "error: ..." + exit 2
CLEAR = (SpecError, KeyError, ValueError, FileNotFoundError)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["lstm", "gru", "vrnn", "prernn", "traditional", "fc6",
                                                          "step", "mini_vgg", "toy", "cache", "-1", "1e9"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def paths(spec: dict, prefix=()):
    yield prefix
    if isinstance(spec, dict):
        for k, v in spec.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            yield from paths(v, (*prefix, i))


TARGETS = [p for p in paths(TOY) if p]


@st.composite
def mutated(draw):
    spec = copy.deepcopy(TOY)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(TARGETS))
        parent = spec
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["set", "delete", "add"]))
            if action == "set":
                parent[path[-1]] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):  # an earlier mutation changed the shape
            pass
    return yaml.safe_dump(spec)


def load_and_expand(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "spec.yaml"
        path.write_text(text)
        before = set(os.listdir(d))
        try:
            expand(load_spec(path), path)
        except CLEAR as e:
            assert str(e).strip(), "an error must say what was wrong"
        assert set(os.listdir(d)) == before, "loading a spec must write nothing"


@pytest.mark.bad_input
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_load_or_fail_clearly(text):
    load_and_expand(text)


@pytest.mark.bad_input
@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 values.map(yaml.safe_dump)))
def test_arbitrary_text_loads_or_fails_clearly(text):
    load_and_expand(text)


def test_fuzz_figures(record_property):
    record_property("reliability fuzzed specs", 2 * EXAMPLES)
