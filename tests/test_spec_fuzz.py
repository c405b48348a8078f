"""Property-based fuzzing of the spec loader (hypothesis): whatever YAML a user
writes - a mutated valid spec or arbitrary text - loading and expanding it either
works or raises ``SpecError``, the one error ``launch/sweep.py`` prints with exit
code 2; it never crashes with anything else, and it writes nothing.

Mutations are drawn from the spec's own types: most set a key to a value its type
allows (a registry name for a string, a small number for a count), so most mutated
specs get past loading and reach grid expansion, where the cross-field checks live.
The figures (examples run, and how many reached expansion) are counted as they run."""

import copy
import os
from dataclasses import MISSING
import tempfile
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import prernn
from launch.expand import expand
from launch.spec import AXES, SpecError, SweepSpec, load_spec
from prernn.config import DataConfig, ModelConfig, TrainConfig
from prernn.settings import fields_of, is_section, section_in
from prernn import backbones
from prernn.data import SOURCES
from prernn.tasks import TASKS
from prernn.train.recipes import SCHEDULES

from .conftest import TOY

EXAMPLES = 300
# a little more than the toy spec, so that mutations reach PreRNN fields and pre-training
BASE = dict(TOY, backbone={"name": "mini_vgg", "pretrained": "cache", "pretrain": {"epochs": 1}},
            grid=[*TOY["grid"], {"model": "prernn", "cell": ["gru", "vrnn"], "layers": [["fc6"], ["fc7"]]}],
            seeds=[0, 1])

NAMES = sorted({*prernn.CELLS, *prernn.RECURRENT_INITS, *SOURCES, *backbones.BACKBONES, *SCHEDULES, *TASKS,
                "gate", "sih", "prernn", "traditional", "matched", "pretrained", "random", "cache", "none",
                "fc6", "fc7", "layer4", "mini", "paper"})
junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
              st.text(max_size=12), st.sampled_from(NAMES)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6)


def plausible(annotation) -> st.SearchStrategy:
    """Values a field of this type could take: mostly valid, sometimes just outside."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([plausible(a) for a in args])
    if origin is list:
        return st.lists(plausible(args[0] if args else typing.Any), min_size=1, max_size=3)
    if origin is dict:  # a grid block: a few axes, each one value or a list of them
        return st.lists(st.sampled_from(AXES), min_size=1, max_size=3, unique=True).flatmap(
            lambda keys: st.fixed_dictionaries({k: plausible(axis_annotation(k)) for k in keys}))
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.one_of(st.integers(1, 24), st.integers(1, 24), st.sampled_from([0, -1]))
    if annotation is float:
        return st.sampled_from([1e-4, 0.01, 0.1, 0.5, 0.9, 0.0, 2.0, -0.1])
    if annotation is str:
        return st.sampled_from(NAMES)
    if is_section(annotation):
        fields = {f.name: ann for f, ann in fields_of(annotation)}
        return st.dictionaries(st.sampled_from(list(fields)), st.just(None), max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({k: plausible(fields[k]) for k in keys}))
    return st.one_of(st.sampled_from(NAMES), st.integers(0, 8))


def axis_annotation(key: str):
    if key == "seed":
        return int
    section, _, name = key.rpartition(".")
    model = {"": ModelConfig, "train": TrainConfig, "data": DataConfig}[section]
    return dict((f.name, ann) for f, ann in fields_of(model))[name]


def annotation_at(path: tuple):
    """The declared type of the spec key at ``path`` (None where nothing is declared)."""
    if len(path) >= 3 and path[0] == "grid":
        return axis_annotation(path[2]) if path[2] in AXES else None
    model = SweepSpec
    for key in path:
        if isinstance(key, int) and typing.get_origin(model) is list:  # an element of a list field
            model = typing.get_args(model)[0]
            continue
        fields = dict((f.name, ann) for f, ann in fields_of(model)) if is_section(model) else {}
        if key not in fields:
            return None
        model = section_in(fields[key]) or fields[key]
    return model


def paths(spec, prefix=()):
    if isinstance(spec, dict):
        for k, v in spec.items():
            yield (*prefix, k)
            yield from paths(v, (*prefix, k))
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            yield (*prefix, i)
            yield from paths(v, (*prefix, i))


def absent_fields(spec: dict):
    """(parent path, key, type) for declared fields the spec leaves at their defaults."""
    for parent in [(), *(p for p in paths(spec) if isinstance(_get(spec, p), dict))]:
        if parent and parent[0] == "grid":
            names = [(a, axis_annotation(a)) for a in AXES]
        else:
            model = annotation_at(parent) if parent else SweepSpec
            if not is_section(model):
                continue
            names = [(f.name, ann) for f, ann in fields_of(model)]
        node = _get(spec, parent)
        yield from ((parent, n, a) for n, a in names if n not in node)


def _required(path: tuple) -> bool:
    if path[0] == "grid":
        return len(path) < 3 or path[2] in ("model", "cell")
    parent = annotation_at(path[:-1]) if len(path) > 1 else SweepSpec
    fields = {f.name: f for f, _ in fields_of(parent)} if is_section(parent) else {}
    return path[-1] in fields and fields[path[-1]].default is MISSING and fields[path[-1]].default_factory is MISSING


def _get(spec, path):
    for key in path:
        spec = spec[key]
    return spec


@st.composite
def mutated(draw):
    spec = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 2))):
        action = draw(st.sampled_from(["typed"] * 6 + ["add"] * 2 + ["delete", "junk"]))
        if action == "add":
            parent, key, ann = draw(st.sampled_from(list(absent_fields(spec))))
            _get(spec, parent)[key] = draw(plausible(ann))
            continue
        path = draw(st.sampled_from(list(paths(spec))))
        parent = _get(spec, path[:-1])
        ann = annotation_at(path)
        if action == "delete":  # a key with a default, mostly; any key sometimes
            if isinstance(parent, dict) and (not _required(path) or draw(st.booleans())):
                del parent[path[-1]]
        elif action == "typed" and ann is not None:
            parent[path[-1]] = draw(plausible(ann))
        else:
            parent[path[-1]] = draw(junk)
    return yaml.safe_dump(spec)


def load_and_expand(text: str) -> str:
    """'expanded', 'grid error' (both reached expansion) or 'load error'."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "spec.yaml"
        path.write_text(text)
        before = set(os.listdir(d))
        try:
            spec = load_spec(path)
        except SpecError as e:
            outcome = "load error"
            assert str(e).strip() and all(p.strip() for p in e.problems), "an error must say what was wrong"
        else:
            try:
                assert expand(spec, path), "a spec that expands has trials"
                outcome = "expanded"
            except SpecError as e:
                outcome = "grid error"
                assert str(e).strip()
        assert set(os.listdir(d)) == before, "loading a spec must write nothing"
    return outcome


def fuzz(strategy, record_property) -> dict[str, int]:
    """Run ``load_and_expand`` on ``EXAMPLES`` drawn texts; record how many ran and reached expansion."""
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(strategy)
    def check(text):
        outcome = load_and_expand(text)
        seen[outcome] = seen.get(outcome, 0) + 1

    check()
    record_property("reliability fuzzed specs", sum(seen.values()))
    return seen


@pytest.mark.bad_input
def test_mutated_specs_load_or_fail_clearly(record_property):
    seen = fuzz(mutated(), record_property)
    ran = sum(seen.values())
    reached = ran - seen.get("load error", 0)
    record_property("reliability mutated specs reaching expansion", reached)
    assert ran >= EXAMPLES * 0.9, seen  # hypothesis may stop early only when it runs out of examples
    assert reached > ran / 2, f"most mutated specs should reach expansion: {seen}"
    assert seen.get("expanded") and seen.get("grid error") and seen.get("load error"), seen


@pytest.mark.bad_input
def test_arbitrary_text_loads_or_fails_clearly(record_property):
    seen = fuzz(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                          junk.map(yaml.safe_dump)), record_property)
    assert sum(seen.values()) >= EXAMPLES * 0.9, seen
